//! From a Dockerfile's text to its logical lines: parser directives at the top (`escape`),
//! comments dropped, continuations joined, each line numbered where it starts.

use super::ParseError;

/// One instruction's text, continuations joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based number of the physical line it starts on.
    pub number: usize,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The escape character: `\` unless an `# escape=` directive says `` ` ``.
    pub escape: char,
    pub lines: Vec<Line>,
}

/// A directive line: `# name=value`, names of letters and digits.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.trim().to_string()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips a trailing escape (and the blanks after it): `Some(rest)` when the line continues.
fn continued(line: &str, escape: char) -> Option<&str> {
    line.trim_end_matches([' ', '\t']).strip_suffix(escape)
}

pub fn split(text: &str) -> Result<Source, ParseError> {
    let physical: Vec<&str> = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut escape = '\\';
    let mut seen = Vec::new();
    let mut i = 0;
    // Directives count only before anything else: the first comment, blank line or
    // instruction ends them (an unknown directive is a comment).
    while let Some((name, value)) = physical.get(i).and_then(|l| directive(l)) {
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        if seen.contains(&name) {
            return Err(ParseError::new(i + 1, format!("only one {name} parser directive can be used")));
        }
        if name == "escape" {
            escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                v => return Err(ParseError::new(i + 1, format!("invalid escape token {v:?}: must be \\ or `"))),
            };
        }
        seen.push(name);
        i += 1;
    }
    let mut lines = Vec::new();
    while i < physical.len() {
        let line = physical[i];
        i += 1;
        if is_comment(line) || line.trim().is_empty() {
            continue;
        }
        let number = i;
        let mut text = String::new();
        let mut current = line;
        loop {
            match continued(current, escape) {
                None => {
                    text.push_str(current);
                    break;
                }
                Some(head) => {
                    text.push_str(head);
                    // The next line that is not a comment or blank continues this one; at the
                    // end of the file the instruction simply ends.
                    let next = loop {
                        match physical.get(i) {
                            None => break None,
                            Some(l) if is_comment(l) || l.trim().is_empty() => i += 1,
                            Some(l) => {
                                i += 1;
                                break Some(*l);
                            }
                        }
                    };
                    match next {
                        Some(l) => current = l,
                        None => break,
                    }
                }
            }
        }
        lines.push(Line { number, text: text.trim().to_string() });
    }
    Ok(Source { escape, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Source) -> Vec<(usize, &str)> {
        s.lines.iter().map(|l| (l.number, l.text.as_str())).collect()
    }

    #[test]
    fn continuations_comments_and_numbers() {
        let s = split("# a comment\nFROM busybox\n\nRUN echo a \\\n  # inside\n\n    && echo b\nCMD [\"sh\"]\r\n").unwrap();
        assert_eq!(s.escape, '\\');
        assert_eq!(texts(&s), [(2, "FROM busybox"), (4, "RUN echo a     && echo b"), (8, "CMD [\"sh\"]")]);
    }

    #[test]
    fn the_escape_directive_changes_the_continuation() {
        let s = split("# escape=`\nFROM scratch\nCOPY a `\n  C:\\dir\\\n").unwrap();
        assert_eq!(s.escape, '`');
        assert_eq!(texts(&s), [(2, "FROM scratch"), (3, "COPY a   C:\\dir\\")]);
        // After the first other line a directive is a comment.
        let s = split("FROM scratch\n# escape=`\nRUN a `\n").unwrap();
        assert_eq!((s.escape, s.lines[1].text.as_str()), ('\\', "RUN a `"));
        assert!(split("# escape=x\n").unwrap_err().to_string().contains("line 1: invalid escape"));
        assert!(split("# escape=`\n# escape=\\\n").unwrap_err().to_string().contains("line 2: only one escape"));
    }

    #[test]
    fn a_continuation_at_the_end_of_the_file_ends_the_instruction() {
        let s = split("FROM a\nRUN x \\").unwrap();
        assert_eq!(texts(&s), [(1, "FROM a"), (2, "RUN x")]);
    }
}
