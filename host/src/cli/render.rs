//! Plain-text tables: aligned columns, no colours, safe to pipe.

/// Renders rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Like [`table`], with the last column wrapped so no line is wider than `width` (the
/// terminal's), continuing under itself; without a width, or with too little room for it, as
/// [`table`].
pub fn table_fit(header: &[&str], rows: &[Vec<String>], width: Option<usize>) -> String {
    let plain = table(header, rows);
    let Some(width) = width else { return plain };
    if plain.lines().all(|l| l.chars().count() <= width) {
        return plain;
    }
    // Where the last column starts: every other column's width and its two spaces.
    let last = header.len() - 1;
    let start: usize = (0..last)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(0) + 2)
        .sum();
    let room = width.saturating_sub(start);
    if room < 20 {
        return plain;
    }
    let mut out = String::new();
    for (line, row) in plain.lines().zip(std::iter::once(None).chain(rows.iter().map(Some))) {
        let Some(row) = row.filter(|r| r[last].chars().count() > room) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let head: String = line.chars().take(start).collect();
        let mut pieces = wrap(&row[last], room).into_iter();
        out.push_str(&format!("{head}{}\n", pieces.next().unwrap_or_default()));
        for piece in pieces {
            out.push_str(&format!("{:start$}{piece}\n", ""));
        }
    }
    out
}

/// Splits `text` into lines of at most `room` characters, at spaces where it can.
fn wrap(text: &str, room: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        // A word longer than the room is cut.
        while word.len() > room {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..room).collect());
        }
        let word: String = word.into_iter().collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > room {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The terminal's width, when stdout is a terminal.
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    crate::platform::stdout_width()
}

/// `key: value` lines with aligned values.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    // A value of several lines continues under its first line.
    let indent = format!("\n{:width$} ", "");
    pairs.iter().map(|(k, v)| format!("{:<width$} {}\n", format!("{k}:"), v.replace('\n', &indent))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let out =
            table(&["ID", "VERSION"], &[vec!["dell-idrac".into(), "0.1.0".into()], vec!["x".into(), "10.2.3".into()]]);
        assert_eq!(out, "ID          VERSION\ndell-idrac  0.1.0\nx           10.2.3\n");
        assert_eq!(fields(&[("id", "a".into()), ("sha256", "b".into())]), "id:     a\nsha256: b\n");
        assert_eq!(fields(&[("id", "a\nb".into()), ("sha256", "c".into())]), "id:     a\n        b\nsha256: c\n");
    }

    #[test]
    fn the_last_column_wraps_to_the_width_under_itself() {
        let rows =
            vec![vec!["node01".to_owned(), "cannot connect to 10.0.0.1:443 (connection refused by the host)".into()]];
        let out = table_fit(&["BMC", "ERROR"], &rows, Some(30));
        assert_eq!(
            out,
            "BMC     ERROR\nnode01  cannot connect to\n        10.0.0.1:443\n        (connection refused by\n        the host)\n"
        );
        assert!(out.lines().all(|l| l.chars().count() <= 30), "{out}");
        assert_eq!(table_fit(&["BMC", "ERROR"], &rows, None), table(&["BMC", "ERROR"], &rows));
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"], "a word longer than the room is cut");
    }
}
