//! One logical line → one instruction: the keyword (any case), flags (`--from=...`), the
//! exec (JSON) or shell form, and each instruction's arguments checked for their shape.
//! Words keep their quotes and `$VAR`s: the builder expands them when it runs the step.

use super::lines::Line;
use super::words;
use super::ParseError;
use std::time::Duration;

/// RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD: `["exec", "form"]` or a shell command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// `--from`: a stage (name or index) or an image.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub sources: Vec<String>,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// `HEALTHCHECK NONE`: the base image's check is turned off.
    None,
    Check {
        test: Command,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(Command),
    Cmd(Command),
    Entrypoint(Command),
    /// `(name, value)`, the value's words as written.
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Copy(CopySpec),
    Add(CopySpec),
    Healthcheck(Health),
    Shell(Vec<String>),
    /// The trigger's text, run at the start of a build FROM this image.
    Onbuild(String),
    Maintainer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    /// The instruction as written (continuations joined): what `Step n/m :` shows.
    pub text: String,
    pub kind: Kind,
}

impl Instruction {
    pub fn keyword(&self) -> &'static str {
        match self.kind {
            Kind::From { .. } => "FROM",
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::User(_) => "USER",
            Kind::Workdir(_) => "WORKDIR",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Shell(_) => "SHELL",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Flags the classic builder does not have: BuildKit's.
const BUILDKIT_ONLY: &[&str] = &["mount", "network", "security", "link", "parents", "exclude", "keep-git-dir", "checksum"];

struct Flags(Vec<(String, String)>);

impl Flags {
    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }
}

/// Leading `--name=value` flags of `rest`, checked against `allowed`; returns them and the
/// remaining text.
fn flags<'a>(rest: &'a str, allowed: &[&str], keyword: &str) -> Result<(Flags, &'a str), String> {
    let mut out = Vec::new();
    let mut rest = rest.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let token = &after[..end];
        rest = after[end..].trim_start();
        if token.is_empty() {
            break;
        }
        let (name, value) = token.split_once('=').unwrap_or((token, ""));
        if BUILDKIT_ONLY.contains(&name) && !allowed.contains(&name) {
            return Err(format!("the --{name} option requires BuildKit, which berth's classic builder is not"));
        }
        if !allowed.contains(&name) {
            return Err(format!("unknown flag: --{name} for {keyword}"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("--{name} given twice"));
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok((Flags(out), rest))
}

/// The exec form when `rest` is a JSON array of strings, else `None` (the shell form).
fn json_array(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str(t).ok()
}

fn command(rest: &str, keyword: &str) -> Result<Command, String> {
    match json_array(rest) {
        Some(v) => Ok(Command::Exec(v)),
        None if rest.trim().is_empty() => Err(format!("{keyword} requires at least one argument")),
        None => Ok(Command::Shell(rest.trim().to_string())),
    }
}

/// `name=value ...` (or the legacy `name value with blanks`) of ENV and LABEL.
fn name_values(rest: &str, escape: char, keyword: &str) -> Result<Vec<(String, String)>, String> {
    let ws = words::split(rest, escape);
    let Some(first) = ws.first() else { return Err(format!("{keyword} requires at least one argument")) };
    if !first.contains('=') {
        let value = rest.trim_start()[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{keyword} {first}: must be of the form name=value"));
        }
        return Ok(vec![(first.clone(), value.to_string())]);
    }
    ws.iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("syntax error: can't find = in {w:?}; must be of the form name=value")),
        })
        .collect()
}

fn healthcheck(rest: &str) -> Result<Health, String> {
    let (mut f, rest) = flags(rest, &["interval", "timeout", "start-period", "start-interval", "retries"], "HEALTHCHECK")?;
    let (kind, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !after.trim().is_empty() || !f.0.is_empty() {
                return Err("HEALTHCHECK NONE takes no other arguments".into());
            }
            Ok(Health::None)
        }
        "CMD" => {
            let mut dur = |name: &str| -> Result<Option<Duration>, String> {
                match f.take(name) {
                    None => Ok(None),
                    Some(v) => match crate::duration::parse(&v) {
                        Some(d) if d.is_zero() || d >= Duration::from_millis(1) => Ok(Some(d)),
                        _ => Err(format!("--{name} {v:?}: a duration such as 30s, at least 1ms")),
                    },
                }
            };
            let (interval, timeout, start_period, start_interval) =
                (dur("interval")?, dur("timeout")?, dur("start-period")?, dur("start-interval")?);
            let retries = match f.take("retries") {
                None => None,
                Some(v) => Some(v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("--retries {v:?}: at least 1"))?),
            };
            Ok(Health::Check { test: command(after, "HEALTHCHECK CMD")?, interval, timeout, start_period, start_interval, retries })
        }
        other => Err(format!("unknown type {other:?} in HEALTHCHECK (try CMD or NONE)")),
    }
}

fn copy(rest: &str, escape: char, keyword: &str) -> Result<CopySpec, String> {
    let allowed: &[&str] = if keyword == "COPY" { &["from", "chown", "chmod"] } else { &["chown", "chmod"] };
    let (mut f, rest) = flags(rest, allowed, keyword)?;
    let mut args = json_array(rest).unwrap_or_else(|| words::split(rest, escape));
    if args.len() < 2 {
        return Err(format!(
            "{keyword} requires at least two arguments, but only {} was provided: the destination could not be determined",
            args.len()
        ));
    }
    let dest = args.pop().unwrap_or_default();
    let nonempty = |v: Option<String>, n: &str| match v {
        Some(v) if v.is_empty() => Err(format!("--{n} needs a value")),
        v => Ok(v),
    };
    Ok(CopySpec {
        from: nonempty(f.take("from"), "from")?,
        chown: nonempty(f.take("chown"), "chown")?,
        chmod: nonempty(f.take("chmod"), "chmod")?,
        sources: args,
        dest,
    })
}

fn stage_name(name: &str) -> Result<String, String> {
    let n = name.to_ascii_lowercase();
    let ok = n.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(n)
    } else {
        Err(format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"))
    }
}

fn one_word(rest: &str, escape: char, keyword: &str) -> Result<String, String> {
    match words::split(rest, escape).as_slice() {
        [w] => Ok(w.clone()),
        _ => Err(format!("{keyword} requires exactly one argument")),
    }
}

fn kind(keyword: &str, rest: &str, escape: char) -> Result<Kind, String> {
    let no_flags = |rest: &str, kw: &str| flags(rest, &[], kw).map(|(_, r)| r.to_string());
    Ok(match keyword {
        "FROM" => {
            let (mut f, rest) = flags(rest, &["platform"], "FROM")?;
            let ws = words::split(rest, escape);
            let (base, name) = match ws.as_slice() {
                [b] => (b.clone(), None),
                [b, as_, n] if as_.eq_ignore_ascii_case("as") => (b.clone(), Some(stage_name(n)?)),
                _ => return Err("FROM requires either one or three arguments (FROM image [AS name])".into()),
            };
            Kind::From { base, name, platform: f.take("platform").filter(|p| !p.is_empty()) }
        }
        "RUN" => Kind::Run(command(&no_flags(rest, "RUN")?, "RUN")?),
        "CMD" => Kind::Cmd(command(rest, "CMD")?),
        "ENTRYPOINT" => Kind::Entrypoint(command(rest, "ENTRYPOINT")?),
        "ENV" => Kind::Env(name_values(rest, escape, "ENV")?),
        "LABEL" => Kind::Label(name_values(rest, escape, "LABEL")?),
        "ARG" => {
            let ws = words::split(rest, escape);
            if ws.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let args = ws
                .into_iter()
                .map(|w| match w.split_once('=') {
                    Some(("", _)) => Err("ARG names can not be blank".to_string()),
                    Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
                    None => Ok((w, None)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Kind::Arg(args)
        }
        "EXPOSE" => {
            let ws = words::split(rest, escape);
            if ws.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            Kind::Expose(ws)
        }
        "VOLUME" => {
            let v = json_array(rest).unwrap_or_else(|| words::split(rest, escape));
            if v.is_empty() || v.iter().any(|p| p.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Kind::Volume(v)
        }
        "USER" => Kind::User(one_word(rest, escape, "USER")?),
        "STOPSIGNAL" => Kind::StopSignal(one_word(rest, escape, "STOPSIGNAL")?),
        "WORKDIR" => match rest.trim() {
            "" => return Err("WORKDIR requires exactly one argument".into()),
            w => Kind::Workdir(w.to_string()),
        },
        "COPY" => Kind::Copy(copy(rest, escape, "COPY")?),
        "ADD" => Kind::Add(copy(rest, escape, "ADD")?),
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(rest)?),
        "SHELL" => match json_array(rest) {
            Some(v) if !v.is_empty() => Kind::Shell(v),
            _ => return Err("SHELL requires the arguments to be in JSON form, e.g. [\"/bin/sh\", \"-c\"]".into()),
        },
        "ONBUILD" => {
            let inner = rest.trim();
            let inner_kw = inner.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            match inner_kw.as_str() {
                "" => return Err("ONBUILD requires at least one argument".into()),
                "ONBUILD" => return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                "FROM" | "MAINTAINER" => return Err(format!("{inner_kw} isn't allowed as an ONBUILD trigger")),
                _ => {}
            }
            // The trigger must parse now, not fail in somebody else's build later.
            kind(&inner_kw, inner[inner_kw.len()..].trim_start(), escape)?;
            Kind::Onbuild(inner.to_string())
        }
        "MAINTAINER" => match rest.trim() {
            "" => return Err("MAINTAINER requires exactly one argument".into()),
            m => Kind::Maintainer(m.to_string()),
        },
        other => return Err(format!("unknown instruction: {other}")),
    })
}

/// An ONBUILD trigger, parsed again when a build FROM its image runs it; `line` is the
/// child's FROM line.
pub fn parse_trigger(text: &str, line: usize, escape: char) -> Result<Instruction, ParseError> {
    parse(&Line { number: line, text: text.to_string() }, escape)
}

pub fn parse(line: &Line, escape: char) -> Result<Instruction, ParseError> {
    let text = line.text.trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let keyword = word.to_ascii_uppercase();
    let kind = kind(&keyword, rest.trim_start(), escape).map_err(|m| ParseError::new(line.number, m))?;
    Ok(Instruction { line: line.number, text: text.to_string(), kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(text: &str) -> Kind {
        parse(&Line { number: 7, text: text.into() }, '\\').unwrap().kind
    }

    fn err(text: &str) -> String {
        parse(&Line { number: 7, text: text.into() }, '\\').unwrap_err().to_string()
    }

    #[test]
    fn forms_of_commands() {
        assert_eq!(k("run echo  hi"), Kind::Run(Command::Shell("echo  hi".into())));
        assert_eq!(k(r#"CMD ["sh", "-c", "x"]"#), Kind::Cmd(Command::Exec(vec!["sh".into(), "-c".into(), "x".into()])));
        // Not valid JSON: the shell form, as Docker takes it.
        assert_eq!(k("ENTRYPOINT [not json"), Kind::Entrypoint(Command::Shell("[not json".into())));
        assert_eq!(k("CMD []"), Kind::Cmd(Command::Exec(vec![])));
        assert_eq!(k(r#"SHELL ["/bin/sh", "-ec"]"#), Kind::Shell(vec!["/bin/sh".into(), "-ec".into()]));
        assert!(err("SHELL /bin/sh -c").contains("JSON form"));
        assert!(err("RUN").contains("RUN requires at least one argument"));
        assert!(err("RUN --mount=type=cache,target=/x make").contains("--mount option requires BuildKit"));
    }

    #[test]
    fn env_label_arg_and_their_forms() {
        assert_eq!(
            k(r#"ENV A=1 B="two words" C=$A"#),
            Kind::Env(vec![("A".into(), "1".into()), ("B".into(), "\"two words\"".into()), ("C".into(), "$A".into())])
        );
        assert_eq!(k("ENV LEGACY a value with blanks"), Kind::Env(vec![("LEGACY".into(), "a value with blanks".into())]));
        assert_eq!(
            k(r#"LABEL "com.example.v"="1.0" x=y"#),
            Kind::Label(vec![("\"com.example.v\"".into(), "\"1.0\"".into()), ("x".into(), "y".into())])
        );
        assert_eq!(k("ARG A B=2"), Kind::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))]));
        assert!(err("ENV A=1 B").contains("can't find = in \"B\""));
        assert!(err("ENV =x").contains("names can not be blank"));
        assert!(err("ENV ONLYNAME").contains("name=value"));
    }

    #[test]
    fn copy_add_and_their_flags() {
        assert_eq!(
            k("COPY --from=build --chown=1:2 a b* /dst/"),
            Kind::Copy(CopySpec {
                from: Some("build".into()),
                chown: Some("1:2".into()),
                chmod: None,
                sources: vec!["a".into(), "b*".into()],
                dest: "/dst/".into()
            })
        );
        assert_eq!(
            k(r#"ADD ["x y.tar", "/opt/"]"#),
            Kind::Add(CopySpec { from: None, chown: None, chmod: None, sources: vec!["x y.tar".into()], dest: "/opt/".into() })
        );
        assert!(err("COPY onlyone").contains("requires at least two arguments"));
        assert!(err("ADD --from=x a b").contains("unknown flag: --from for ADD"));
        assert!(err("COPY --link a b").contains("requires BuildKit"));
        assert!(err("COPY --bogus a b").contains("unknown flag: --bogus"));
    }

    #[test]
    fn from_healthcheck_onbuild_and_the_rest() {
        assert_eq!(
            k("FROM --platform=linux/arm64 img AS Base"),
            Kind::From { base: "img".into(), name: Some("base".into()), platform: Some("linux/arm64".into()) }
        );
        assert!(err("FROM a b").contains("one or three arguments"));
        assert!(err("FROM a AS 1x").contains("invalid name for build stage"));
        assert_eq!(
            k("HEALTHCHECK --interval=1m30s --retries=3 CMD wget -q localhost"),
            Kind::Healthcheck(Health::Check {
                test: Command::Shell("wget -q localhost".into()),
                interval: Some(Duration::from_secs(90)),
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: Some(3)
            })
        );
        assert_eq!(k("healthcheck none"), Kind::Healthcheck(Health::None));
        assert!(err("HEALTHCHECK --interval=soon CMD true").contains("--interval"));
        assert!(err("HEALTHCHECK RUN true").contains("unknown type"));
        assert_eq!(k("ONBUILD RUN echo child"), Kind::Onbuild("RUN echo child".into()));
        assert!(err("ONBUILD ONBUILD RUN x").contains("isn't allowed"));
        assert!(err("ONBUILD FROM x").contains("isn't allowed as an ONBUILD trigger"));
        assert!(err("ONBUILD BOGUS x").contains("unknown instruction: BOGUS"));
        assert_eq!(k("EXPOSE 80/tcp 53/udp"), Kind::Expose(vec!["80/tcp".into(), "53/udp".into()]));
        assert_eq!(k(r#"VOLUME ["/data", "/logs"]"#), Kind::Volume(vec!["/data".into(), "/logs".into()]));
        assert_eq!(k("VOLUME /a /b"), Kind::Volume(vec!["/a".into(), "/b".into()]));
        assert_eq!(k("WORKDIR /my dir"), Kind::Workdir("/my dir".into()));
        assert_eq!(k("USER app:app"), Kind::User("app:app".into()));
        assert!(err("USER a b").contains("exactly one argument"));
        assert_eq!(k("STOPSIGNAL SIGUSR1"), Kind::StopSignal("SIGUSR1".into()));
        assert_eq!(err("FOO bar"), "dockerfile parse error on line 7: unknown instruction: FOO");
    }
}
