//! `.dockerignore`: which files of a build context are left out, as Docker reads it. One
//! pattern a line (`#` comments), Go's `filepath.Match` per path element plus `**` for any
//! number of elements, `!` for an exception; the last pattern that matches a path or one of
//! its parent directories decides.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    parts: Vec<String>,
    exception: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// `a/./b/../c/` → `a/c`; a leading `/` means the context's root.
fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p.to_string()),
        }
    }
    out
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (exception, p) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, l),
                };
                let parts = clean(p);
                (!parts.is_empty()).then_some(Pattern { parts, exception })
            })
            .collect();
        Ignore { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any exception could bring back something under an excluded directory: if
    /// not, a walk can skip excluded directories whole.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Is the context-relative `path` left out?
    pub fn excludes(&self, path: &str) -> bool {
        let parts = clean(path);
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut excluded = false;
        for p in &self.patterns {
            let pat: Vec<&str> = p.parts.iter().map(String::as_str).collect();
            // The path itself or a directory above it.
            if (1..=parts.len()).any(|n| match_parts(&pat, &parts[..n])) {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

fn match_parts(pat: &[&str], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_parts(rest, &path[skip..])),
        Some((first, rest)) => {
            path.split_first().is_some_and(|(p, prest)| glob(first.as_bytes(), p.as_bytes()) && match_parts(rest, prest))
        }
    }
}

/// Go's `filepath.Match` for one path element: `*`, `?`, `[a-z]`, `[^a]`, `\` escapes.
/// COPY and ADD match their sources with it too.
pub fn glob(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some((&c, name_rest)) = name.split_first() else { return false };
            let (negate, mut body) = match rest.first() {
                Some(b'^') | Some(b'!') => (true, &rest[1..]),
                _ => (false, rest),
            };
            let mut matched = false;
            let mut first = true;
            loop {
                match body.split_first() {
                    // An unclosed class matches nothing, as Go reports ErrBadPattern.
                    None => return false,
                    Some((b']', after)) if !first => {
                        body = after;
                        break;
                    }
                    Some((&lo, after)) => {
                        let (lo, after) = if lo == b'\\' && !after.is_empty() { (after[0], &after[1..]) } else { (lo, after) };
                        if after.len() >= 2 && after[0] == b'-' && after[1] != b']' {
                            let hi = after[1];
                            matched |= lo <= c && c <= hi;
                            body = &after[2..];
                        } else {
                            matched |= lo == c;
                            body = after;
                        }
                    }
                }
                first = false;
            }
            matched != negate && glob(body, name_rest)
        }
        Some((b'\\', rest)) if !rest.is_empty() => name.first() == Some(&rest[0]) && glob(&rest[1..], &name[1..]),
        Some((&c, rest)) => name.first() == Some(&c) && glob(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_exceptions_and_parents() {
        let i = Ignore::parse("# comment\n\n*.log\n/build\n!build/keep.txt\nsecret/**\n**/*.tmp\ndocs/?.md\n");
        assert!(i.excludes("a.log"));
        assert!(!i.excludes("dir/a.log"), "* does not cross directories");
        assert!(i.excludes("build/out/x.o"), "a directory's contents go with it");
        assert!(!i.excludes("build/keep.txt"), "the exception brings it back");
        assert!(i.excludes("secret/a/b"));
        assert!(i.excludes("x.tmp") && i.excludes("deep/er/x.tmp"));
        assert!(i.excludes("docs/a.md") && !i.excludes("docs/ab.md"));
        assert!(!i.excludes("src/main.rs"));
        assert!(i.has_exceptions());
    }

    #[test]
    fn paths_and_patterns_are_cleaned() {
        let i = Ignore::parse("./a/../b/\n  c  \n");
        assert!(i.excludes("b/x") && i.excludes("./c"));
        assert!(!i.excludes("a"));
        assert!(Ignore::parse("\n# only comments\n").is_empty());
    }

    #[test]
    fn docker_pys_dockerignore_case() {
        // tests/integration/api_build_test.py::test_build_with_dockerignore
        let i = Ignore::parse("ignored\nDockerfile\n.dockerignore\n ignored-with-spaces \n!ignored/subdir/excepted-file\n! ignored/subdir/excepted-with-spaces  \n\n#*\n");
        let kept: Vec<&str> = [
            "not-ignored",
            "#file.txt",
            "ignored-with-spaces",
            "ignored/subdir/file",
            "ignored/subdir/excepted-file",
            "ignored/subdir/excepted-with-spaces",
            "Dockerfile",
        ]
        .into_iter()
        .filter(|p| !i.excludes(p))
        .collect();
        assert_eq!(kept, ["not-ignored", "#file.txt", "ignored/subdir/excepted-file", "ignored/subdir/excepted-with-spaces"]);
    }

    #[test]
    fn globs() {
        assert!(glob(b"[a-c]x", b"bx") && !glob(b"[a-c]x", b"dx"));
        assert!(glob(b"[^a]x", b"bx") && !glob(b"[^a]x", b"ax"));
        assert!(glob(b"\\*", b"*") && !glob(b"\\*", b"a"));
        assert!(!glob(b"[ab", b"a"));
        assert!(glob(b"*.tar.gz", b"x.tar.gz"));
    }
}
