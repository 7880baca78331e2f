//! A small XML tree for the PEP protocols (SOAP envelopes and CLIXML): element local names,
//! attributes, text with entities resolved. Documents here are a few kilobytes.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// An XML element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Local name (prefix dropped): `Envelope`, `Obj`, `S`.
    pub tag: String,
    /// Attributes by local name.
    pub attrs: Vec<(String, String)>,
    /// Text content, entities resolved.
    pub text: String,
    /// Child elements.
    pub children: Vec<Node>,
}

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    name.rsplit(':').next().unwrap_or("").to_owned()
}

impl Node {
    /// The value of an attribute (by local name).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first descendant (depth first, self included) with this tag whose `attr` is `value`
    /// (any, if `None`).
    pub fn find_by(&self, tag: &str, attr: &str, value: Option<&str>) -> Option<&Node> {
        if self.tag == tag && value.is_none_or(|v| self.attr(attr) == Some(v)) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_by(tag, attr, value))
    }

    /// The first descendant with this tag.
    pub fn find(&self, tag: &str) -> Option<&Node> {
        self.find_by(tag, "", None)
    }

    /// Every descendant with this tag, in document order.
    pub fn find_all<'a>(&'a self, tag: &str, out: &mut Vec<&'a Node>) {
        if self.tag == tag {
            out.push(self);
        }
        for c in &self.children {
            c.find_all(tag, out);
        }
    }
}

/// Parses a document into a tree under a synthetic `#root`.
pub fn parse(xml: &str) -> Result<Node, String> {
    let bad = |e: &dyn std::fmt::Display| format!("malformed XML: {e}");
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node { tag: "#root".into(), ..Node::default() }];
    let open = |e: &BytesStart<'_>| -> Result<Node, String> {
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| bad(&e))?;
            attrs.push((local(a.key.as_ref()), a.unescape_value().map_err(|e| bad(&e))?.into_owned()));
        }
        Ok(Node { tag: local(e.name().as_ref()), attrs, ..Node::default() })
    };
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => stack.push(open(&e)?),
            Event::Empty(e) => {
                let node = open(&e)?;
                stack.last_mut().expect("root").children.push(node);
            }
            Event::End(_) => {
                let node = stack.pop().expect("balanced by the reader");
                stack.last_mut().ok_or_else(|| bad(&"unbalanced end tag"))?.children.push(node);
            }
            Event::Text(t) => stack.last_mut().expect("root").text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => match r.decode().map_err(|e| bad(&e))?.as_ref() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(bad(&format!("unknown entity &{other};"))),
                    },
                };
                stack.last_mut().expect("root").text.push_str(&resolved);
            }
            Event::CData(c) => stack.last_mut().expect("root").text.push_str(&String::from_utf8_lossy(&c)),
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(bad(&"unclosed element"));
    }
    Ok(stack.pop().expect("root"))
}

/// Escapes text for an element or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
