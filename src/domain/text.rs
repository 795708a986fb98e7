//! Free text from users: single-line fields (names, titles) and multi-line ones (messages, page bodies).
//! Control characters are refused; line breaks are kept only where a field allows them, and stored as `\n`.

/// A single-line field: trimmed, 1..=max characters, no control characters (so no CR/LF can reach a header).
pub fn single_line(value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    if v.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err("must be a single line without control characters".into());
    }
    if v.chars().any(is_invisible) {
        return Err("must not contain invisible or direction-changing characters".into());
    }
    Ok(v.to_string())
}

/// Zero-width and bidirectional-override characters: they make a name display as something else
/// (e.g. reversed text hiding a file extension or a different address).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A multi-line field: line breaks normalized to `\n`, tabs kept, other control characters refused.
/// Empty (after trimming) becomes `None`.
pub fn multi_line(value: &str, max: usize) -> Result<Option<String>, String> {
    let v = value.replace("\r\n", "\n").replace('\r', "\n");
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    if v.chars().any(is_invisible) {
        return Err("must not contain invisible or direction-changing characters".into());
    }
    Ok(Some(v.to_string()))
}

/// A cell for a CSV that people open in spreadsheets: text that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading apostrophe.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_refuses_breaks_and_controls() {
        assert_eq!(single_line("  Ada  ", 10).unwrap(), "Ada");
        assert!(single_line("a\r\nb", 10).is_err());
        assert!(single_line("a\u{0}", 10).is_err());
        assert!(single_line("   ", 10).is_err());
        assert!(single_line("abcdef", 5).is_err());
        assert_eq!(single_line("Zoë 🚀", 10).unwrap(), "Zoë 🚀");
        assert!(single_line("invoice\u{202E}fdp.exe", 30).is_err());
        assert!(single_line("a\u{200B}b", 10).is_err());
    }

    #[test]
    fn multi_line_keeps_breaks_as_newlines() {
        assert_eq!(multi_line("a\r\nb\rc", 10).unwrap().unwrap(), "a\nb\nc");
        assert_eq!(multi_line("  ", 10).unwrap(), None);
        assert!(multi_line("a\u{7}", 10).is_err());
        assert!(multi_line(&"x".repeat(11), 10).is_err());
        assert!(multi_line(&"é".repeat(10), 10).unwrap().is_some());
    }

    #[test]
    fn formulas_are_defused_for_spreadsheets() {
        assert_eq!(
            super::spreadsheet_safe("=HYPERLINK(\"x\")"),
            "'=HYPERLINK(\"x\")"
        );
        for c in ["+1", "-2", "@SUM(A1)", "\tx"] {
            assert!(super::spreadsheet_safe(c).starts_with('\''));
        }
        assert_eq!(super::spreadsheet_safe("Ada Lovelace"), "Ada Lovelace");
    }
}
