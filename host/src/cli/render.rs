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
}
