//! Dockerfiles for the classic builder (`POST /build`):
//! - `lines`: directives, continuations and comments; `words`: splitting and `$VAR`
//!   expansion; `instruction`: each instruction's flags and forms; here: stages;
//! - `vars`: how ARG, `--build-arg` and ENV are scoped through a build;
//! - `ignore` and `context`: `.dockerignore`, and the context tar a client sends.
//!
//! Variables are not expanded while parsing: that needs the build's ARG and ENV values,
//! step by step, so the builder does it with [`words::expand`] and [`vars::Scope`].

pub mod context;
pub mod ignore;
pub mod instruction;
pub mod lines;
pub mod vars;
pub mod words;

pub use instruction::{Command, CopySpec, Health, Instruction, Kind};

/// A parse error, with the line it is on: `dockerfile parse error on line 3: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError { line, message: message.into() }
    }
}

/// One `FROM` and what follows it up to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub line: usize,
    /// The base as written (`scratch`, `busybox:${TAG}`, another stage's name).
    pub base: String,
    /// `AS name`, lower-cased as Docker compares stage names.
    pub name: Option<String>,
    pub platform: Option<String>,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    /// ARGs before the first FROM: usable in FROM lines (and redeclared inside a stage).
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
        let source = lines::split(text)?;
        let mut global_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for line in &source.lines {
            let inst = instruction::parse(line, source.escape)?;
            let keyword = inst.keyword();
            match inst.kind {
                Kind::From { base, name, platform } => {
                    stages.push(Stage { line: line.number, base, name, platform, instructions: Vec::new() })
                }
                kind => match stages.last_mut() {
                    Some(stage) => stage.instructions.push(Instruction { kind, ..inst }),
                    None => match kind {
                        Kind::Arg(args) => global_args.extend(args),
                        _ => {
                            return Err(ParseError::new(
                                line.number,
                                format!("{} before the first FROM: only ARG can come before it", keyword),
                            ))
                        }
                    },
                },
            }
        }
        if stages.is_empty() {
            return Err(ParseError::new(source.lines.last().map_or(1, |l| l.number), "the Dockerfile has no FROM instruction"));
        }
        for (i, s) in stages.iter().enumerate() {
            if let Some(n) = &s.name {
                if stages[..i].iter().any(|o| o.name.as_ref() == Some(n)) {
                    return Err(ParseError::new(s.line, format!("duplicate stage name {n:?}")));
                }
            }
        }
        Ok(Dockerfile { escape: source.escape, global_args, stages })
    }

    /// The index of the stage `target` names (`--target`), or the last stage.
    pub fn target(&self, target: Option<&str>) -> Result<usize, String> {
        match target.filter(|t| !t.is_empty()) {
            None => Ok(self.stages.len() - 1),
            Some(t) => {
                let t = t.to_ascii_lowercase();
                self.stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(t.as_str()))
                    .ok_or_else(|| format!("target stage {t:?} could not be found"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_global_args_and_targets() {
        let d = Dockerfile::parse(
            "ARG TAG=1\nARG OTHER\nFROM busybox:${TAG} AS Build\nRUN echo hi > /x\nFROM --platform=linux/arm64 scratch\nCOPY --from=build /x /x\n",
        )
        .unwrap();
        assert_eq!(d.global_args, [("TAG".to_string(), Some("1".to_string())), ("OTHER".to_string(), None)]);
        assert_eq!(d.stages.len(), 2);
        assert_eq!((d.stages[0].base.as_str(), d.stages[0].name.as_deref()), ("busybox:${TAG}", Some("build")));
        assert_eq!(d.stages[1].platform.as_deref(), Some("linux/arm64"));
        assert_eq!(d.stages[1].instructions[0].line, 6);
        assert_eq!(d.target(None), Ok(1));
        assert_eq!(d.target(Some("BUILD")), Ok(0));
        assert!(d.target(Some("nope")).is_err());
    }

    #[test]
    fn structure_errors_name_the_line() {
        let e = |t: &str| Dockerfile::parse(t).unwrap_err().to_string();
        assert_eq!(e("RUN x\nFROM a\n"), "dockerfile parse error on line 1: RUN before the first FROM: only ARG can come before it");
        assert_eq!(e("# nothing\n\n"), "dockerfile parse error on line 1: the Dockerfile has no FROM instruction");
        assert_eq!(e("FROM a AS x\nFROM b AS X\n"), "dockerfile parse error on line 2: duplicate stage name \"x\"");
        assert_eq!(e("FROM a\n\nFOO bar\n"), "dockerfile parse error on line 3: unknown instruction: FOO");
    }
}
