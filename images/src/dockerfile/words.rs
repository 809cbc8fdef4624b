//! Words as the Dockerfile sees them: splitting on blanks outside quotes (quotes kept for
//! later), and at build time the expansion of `$VAR`, `${VAR}`, `${VAR:-word}` and
//! `${VAR:+word}` with quotes and escapes removed, as Docker's shell lexer does for the
//! instructions that take variables (not RUN, CMD, ENTRYPOINT: the shell expands those).

/// Splits on blanks outside quotes and escapes; quotes and escapes stay in the words.
pub fn split(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
        word.push(c);
        // An escaped character never opens, closes or splits (single quotes take it literally).
        if c == escape && quote != Some('\'') {
            if let Some(n) = chars.next() {
                word.push(n);
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Expands one word: variables from `lookup` (unset is empty), quotes and escapes removed.
pub fn expand(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => out.push(c),
            (Some('"'), '"') => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (_, e) if e == escape => match chars.get(i) {
                // In double quotes only these are escaped; elsewhere the escape stays.
                Some(&n) if quote.is_none() || n == '"' || n == '$' || n == escape => {
                    out.push(n);
                    i += 1;
                }
                _ => out.push(e),
            },
            (_, '$') => i = variable(&chars, i, escape, lookup, &mut out)?,
            _ => out.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unexpected end of statement while looking for matching {q}"));
    }
    Ok(out)
}

/// After a `$` at `chars[i-1]`: appends the value and returns where scanning goes on.
fn variable(
    chars: &[char],
    mut i: usize,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<usize, String> {
    let is_name = |c: char, first: bool| c == '_' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit());
    match chars.get(i) {
        Some('{') => {
            i += 1;
            let start = i;
            while chars.get(i).is_some_and(|c| is_name(*c, i == start)) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            if name.is_empty() {
                return Err("missing variable name in ${}".into());
            }
            let value = lookup(&name);
            match chars.get(i) {
                Some('}') => {
                    out.push_str(&value.unwrap_or_default());
                    Ok(i + 1)
                }
                Some(':') if matches!(chars.get(i + 1), Some('-' | '+')) => {
                    let op = chars[i + 1];
                    // The word runs to the matching brace; it may hold variables itself.
                    let (mut depth, wstart) = (1, i + 2);
                    let mut j = wstart;
                    while j < chars.len() {
                        match chars[j] {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err(format!("missing '}}' in ${{{name}:{op}...}}"));
                    }
                    let inner: String = chars[wstart..j].iter().collect();
                    let set = value.as_deref().is_some_and(|v| !v.is_empty());
                    match (op, set) {
                        ('-', true) | ('+', false) => out.push_str(if op == '-' { value.as_deref().unwrap_or("") } else { "" }),
                        _ => out.push_str(&expand(&inner, escape, lookup)?),
                    }
                    Ok(j + 1)
                }
                _ => Err(format!("unsupported modifier in ${{{name}...}}: ${{VAR}}, ${{VAR:-word}} and ${{VAR:+word}} are")),
            }
        }
        Some(&c) if is_name(c, true) => {
            let start = i;
            while chars.get(i).is_some_and(|c| is_name(*c, false)) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            out.push_str(&lookup(&name).unwrap_or_default());
            Ok(i)
        }
        _ => {
            out.push('$');
            Ok(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("apple".into()),
            "EMPTY" => Some(String::new()),
            "SPACE" => Some("a b".into()),
            _ => None,
        }
    }

    fn x(word: &str) -> String {
        expand(word, '\\', &env).unwrap()
    }

    #[test]
    fn splitting_keeps_quoted_blanks_together() {
        assert_eq!(split(r#"a "b c" 'd e'  f\ g"#, '\\'), [r#"a"#, r#""b c""#, "'d e'", r"f\ g"]);
        assert_eq!(split("k=\"v 1\" k2=v2", '\\'), ["k=\"v 1\"", "k2=v2"]);
        assert!(split("  ", '\\').is_empty());
    }

    #[test]
    fn variables_and_defaults() {
        assert_eq!(x("$A/${A}/${A}s"), "apple/apple/apples");
        assert_eq!(x("${NOPE}-$NOPE-"), "--");
        assert_eq!(x("${NOPE:-pear}|${A:-pear}|${EMPTY:-pear}"), "pear|apple|pear");
        assert_eq!(x("${A:+set}|${NOPE:+set}|${NOPE:-${A}x}"), "set||applex");
        assert_eq!(x("cost: $5 $"), "cost: $5 $");
        assert!(expand("${A", '\\', &env).is_err());
        assert!(expand("${A:?x}", '\\', &env).is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x(r#""$A b"'$A'"#), "apple b$A");
        assert_eq!(x(r"\$A \\ a\b"), r"$A \ ab");
        assert_eq!(x(r#""a \"q\" \$A \n""#), r#"a "q" $A \n"#);
        assert_eq!(x("$SPACE"), "a b");
        assert_eq!(expand("`$A", '`', &env).unwrap(), "$A");
        assert!(expand("\"open", '\\', &env).unwrap_err().contains("matching \""));
    }
}
