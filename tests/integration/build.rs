//! Image builds: the real docker CLI (which uses the classic builder API without buildx)
//! and berth's own CLI against a real daemon; every step runs in a real container.

use berth_tests::{require_root, Daemon, Out};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A build context directory with these files.
fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

fn build(d: &Daemon, dir: &Path, args: &[&str]) -> Out {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(dir.to_str().unwrap());
    d.docker(&all)
}

fn inspect(d: &Daemon, image: &str, format: &str) -> String {
    d.docker(&["image", "inspect", image, "--format", format]).ok().stdout.trim().to_string()
}

/// Serves `body` once over HTTP from inside the daemon's network namespace; its URL.
fn serve_once(d: &Daemon, body: &'static [u8]) -> String {
    let listener = d.netns.listen("127.0.0.1:0");
    let url = format!("http://{}/files/served.bin", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            let mut req = [0u8; 4096];
            let _ = c.read(&mut req);
            let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = c.write_all(body);
        }
    });
    url
}

const EVERY_INSTRUCTION: &str = r#"# A comment, then a global ARG used by FROM.
ARG BASE=busybox
FROM ${BASE} AS builder
ARG MSG=default
RUN mkdir -p /out \
    && echo "$MSG" > /out/artifact
FROM scratch AS files
COPY data.txt /only.txt
FROM busybox
LABEL org.example.role="test" version=1
MAINTAINER someone@example.com
ENV APP_HOME=/srv/app PATH=/srv/app/bin:$PATH
WORKDIR $APP_HOME
COPY --from=builder /out/artifact ./
COPY --from=files /only.txt ./
COPY --chown=nobody:nogroup data.txt owned.txt
COPY *.txt multi/
ADD tree.tar.gz /unpacked/
ADD URL_HERE /downloaded/
SHELL ["/bin/sh", "-xc"]
RUN echo shell-in-use > /shell.txt
USER nobody
EXPOSE 8080 9090/udp
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD test -f /srv/app/artifact
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat artifact"]
"#;

/// Acceptance 1: a Dockerfile using every instruction, built by the docker CLI; each
/// instruction's effect is seen in the image, in a container of it, or in a child build.
#[test]
fn docker_build_runs_every_instruction() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let tree = context(&d, "tree", &[("d/t1", "t1\n")]);
    let ctx = context(&d, "ctx", &[("data.txt", "data\n"), ("secret.txt", "secret\n"), (".dockerignore", "secret.txt\n")]);
    let tar = std::process::Command::new("tar").arg("-czf").arg(ctx.join("tree.tar.gz")).arg("-C").arg(&tree).arg(".").status().unwrap();
    assert!(tar.success());
    let url = serve_once(&d, b"downloaded bytes\n");
    std::fs::write(ctx.join("Dockerfile"), EVERY_INSTRUCTION.replace("URL_HERE", &url)).unwrap();

    let out = build(&d, &ctx, &["-t", "full", "--build-arg", "MSG=from-arg"]).ok();
    assert!(out.stdout.contains("Step 1/26 : FROM ${BASE} AS builder"), "{}", out.stdout);
    assert!(out.stdout.contains("Successfully tagged full:latest"), "{}", out.stdout);
    // SHELL: the RUN after it ran under `sh -x`, which traced the command.
    assert!(out.stdout.contains("+ echo shell-in-use") || out.stderr.contains("+ echo shell-in-use"), "{out:?}");

    // CMD and ENTRYPOINT, the ARG's value through a stage and COPY --from.
    assert_eq!(d.docker(&["run", "--rm", "full"]).ok().stdout, "from-arg\n");
    assert_eq!(inspect(&d, "full", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"), r#"["/bin/sh","-c"] ["cat artifact"]"#);
    let sh = |cmd: &str| d.docker(&["run", "--rm", "--entrypoint", "/bin/sh", "full", "-c", cmd]).ok().stdout;
    // USER, WORKDIR, ENV.
    assert_eq!(
        sh("id -u; pwd; echo $APP_HOME; echo $PATH"),
        "65534\n/srv/app\n/srv/app\n/srv/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    // COPY from a scratch stage, --chown, wildcards (.dockerignore applied), ADD of a tar and a URL.
    assert_eq!(sh("cat only.txt; stat -c '%u:%g' owned.txt; ls multi"), "data\n65534:65533\ndata.txt\n");
    assert_eq!(sh("cat /unpacked/d/t1 /shell.txt; stat -c '%a %s' /downloaded/served.bin"), "t1\nshell-in-use\n600 17\n");
    let root_sh = d.docker(&["run", "--rm", "-u", "0", "--entrypoint", "cat", "full", "/downloaded/served.bin"]).ok().stdout;
    assert_eq!(root_sh, "downloaded bytes\n", "ADD of a URL: the file as served, mode 600 as Docker makes it");
    // LABEL, MAINTAINER, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD in the configuration.
    assert_eq!(
        inspect(&d, "full", "{{index .Config.Labels \"org.example.role\"}} {{index .Config.Labels \"version\"}} {{.Author}}"),
        "test 1 someone@example.com"
    );
    assert_eq!(
        inspect(&d, "full", "{{json .Config.ExposedPorts}} {{json .Config.Volumes}} {{.Config.StopSignal}}"),
        r#"{"8080/tcp":{},"9090/udp":{}} {"/data":{}} SIGUSR1"#
    );
    assert_eq!(
        inspect(&d, "full", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD-SHELL","test -f /srv/app/artifact"],"Interval":30000000000,"Timeout":3000000000,"Retries":2}"#
    );
    assert_eq!(inspect(&d, "full", "{{json .Config.OnBuild}}"), r#"["RUN echo triggered > /tmp/onbuild"]"#);
    // The healthcheck runs in a container of the image.
    let c = d.docker(&["run", "-d", "--health-interval", "200ms", "full", "sleep 30"]).ok().stdout.trim().to_string();
    berth_tests::eventually("the built image's healthcheck to pass", Duration::from_secs(15), || {
        d.docker(&["inspect", &c, "--format", "{{.State.Health.Status}}"]).stdout.trim() == "healthy"
    });
    d.docker(&["rm", "-f", &c]).ok();

    // ONBUILD: a child build runs the trigger first; the child keeps no trigger.
    let child = context(&d, "child", &[("Dockerfile", "FROM full\nRUN [\"cat\", \"/tmp/onbuild\"]\n")]);
    let out = build(&d, &child, &["-t", "child"]).ok();
    assert!(out.stdout.contains("# Executing 1 build trigger"), "{}", out.stdout);
    assert!(out.stdout.contains("triggered\n"), "{}", out.stdout);
    assert_eq!(inspect(&d, "child", "{{json .Config.OnBuild}}"), "null");

    // Configuration instructions make no layer: LABEL..CMD add none beyond the copies and RUNs.
    let layers = inspect(&d, "full", "{{len .RootFS.Layers}}");
    let base_layers = inspect(&d, "busybox", "{{len .RootFS.Layers}}");
    let added = layers.parse::<usize>().unwrap() - base_layers.parse::<usize>().unwrap();
    assert_eq!(added, 7, "4 COPY, 2 ADD and 1 RUN in the final stage make 7 layers");
}

/// Which steps of a build's output were cache hits, by step number.
fn cached_steps(out: &str) -> Vec<usize> {
    let mut hits = Vec::new();
    let mut step = 0;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            step = rest.split('/').next().unwrap().parse().unwrap();
        } else if line.trim() == "---> Using cache" {
            hits.push(step);
        }
    }
    hits
}

/// Acceptance 2: multi-stage with COPY --from, .dockerignore, a second build all cache hits,
/// and a changed file invalidating the cache from its COPY on, not before.
#[test]
fn multi_stage_builds_and_the_layer_cache() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let dockerfile = "# escape=`\nFROM busybox AS build\nCOPY a.txt /a.txt\nRUN cat /a.txt > /res `\n && echo built >> /res\nFROM busybox\nCOPY --from=build /res /res\nCOPY . /ctx/\nCOPY b.txt /b.txt\nRUN cat /res /b.txt > /all\n";
    let ctx = context(
        &d,
        "ctx",
        &[
            ("Dockerfile", dockerfile),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("ignored.log", "x"),
            (".dockerignore", "*.log\nDockerfile\n.dockerignore\n"),
        ],
    );
    let first = build(&d, &ctx, &["-t", "ms"]).ok();
    assert_eq!(cached_steps(&first.stdout), Vec::<usize>::new());
    assert_eq!(d.docker(&["run", "--rm", "ms", "cat", "/all"]).ok().stdout, "a\nbuilt\nb\n");
    // Ignored files never reach the image; the Dockerfile and .dockerignore, which the client
    // always sends, leave the context when .dockerignore names them (as dockerd does).
    assert_eq!(
        d.docker(&["run", "--rm", "ms", "ls", "-A", "/ctx"]).ok().stdout,
        "a.txt\nb.txt\n",
        ".dockerignore'd files reached the image"
    );
    let id = inspect(&d, "ms", "{{.Id}}");

    let second = build(&d, &ctx, &["-t", "ms"]).ok();
    assert_eq!(cached_steps(&second.stdout), vec![2, 3, 5, 6, 7, 8], "{}", second.stdout);
    assert_eq!(inspect(&d, "ms", "{{.Id}}"), id, "an all-cached build made another image");

    // A file the context leaves out changes nothing.
    std::fs::write(ctx.join("ignored.log"), "changed").unwrap();
    assert_eq!(cached_steps(&build(&d, &ctx, &["-t", "ms"]).ok().stdout), vec![2, 3, 5, 6, 7, 8]);

    // b.txt changed: `COPY . /ctx/` (which holds it) and what follows run again.
    std::fs::write(ctx.join("b.txt"), "b2\n").unwrap();
    let third = build(&d, &ctx, &["-t", "ms"]).ok();
    assert_eq!(cached_steps(&third.stdout), vec![2, 3, 5], "{}", third.stdout);
    assert_eq!(d.docker(&["run", "--rm", "ms", "cat", "/all"]).ok().stdout, "a\nbuilt\nb2\n");

    // --no-cache runs every step again.
    assert_eq!(cached_steps(&build(&d, &ctx, &["--no-cache", "-t", "ms"]).ok().stdout), Vec::<usize>::new());

    // --target stops at a stage.
    let out = build(&d, &ctx, &["--target", "build", "-t", "ms-build"]).ok();
    assert!(out.stdout.contains("Step 3/3 :"), "{}", out.stdout);
    assert_eq!(d.docker(&["run", "--rm", "ms-build", "cat", "/res"]).ok().stdout, "a\nbuilt\n");

    // Intermediate images are hidden from `images` but listed by `images -a`; removing
    // the image takes its untagged parents; `builder prune` removes the rest of the cache.
    let shown = d.docker(&["images", "-q"]).ok().stdout.lines().count();
    let all = d.docker(&["images", "-a", "-q"]).ok().stdout.lines().count();
    assert!(all > shown + 5, "images -a lists {all}, images {shown}");
    d.docker(&["rmi", "ms", "ms-build"]).ok();
    let pruned = d.docker(&["builder", "prune", "-f"]).ok();
    assert!(pruned.stdout.contains("Total reclaimed space"), "{pruned:?}");
    let left = d.docker(&["images", "-a", "--format", "{{.Repository}}"]).ok().stdout;
    assert!(left.lines().all(|l| l == "busybox" || l == "alpine"), "left after prune: {left}");
}

/// Acceptance 4: bad input gets a clear error and leaves no image, no container (but the
/// failed step's, as Docker keeps it unless --force-rm) and no files.
#[test]
fn bad_builds_are_refused_with_the_reason() {
    require_root!();
    let d = Daemon::start_with_config(r#"{"build-context-limit": "64k"}"#);
    d.load_busybox();
    let ctx = context(&d, "ctx", &[("a.txt", "a")]);
    let refused = |dockerfile: &str| {
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let out = build(&d, &ctx, &["-t", "built"]);
        assert_ne!(out.code, 0, "{out:?}");
        out.stderr
    };
    assert!(refused("FROM busybox\nFROBNICATE x\n").contains("dockerfile parse error on line 2: unknown instruction: FROBNICATE"));
    assert!(refused("FROM busybox\nCOPY onlyone\n").contains("line 2: COPY requires at least two arguments"));
    let err = refused("FROM busybox\nCOPY ../x /x\n");
    assert!(err.contains("COPY failed: forbidden path outside the build context: ../x"), "{err}");
    let err = refused("FROM busybox\nCOPY missing.txt /x\n");
    assert!(err.contains("COPY failed: file not found in build context"), "{err}");
    let err = refused("FROM busybox\nADD http://127.0.0.1:1/nothing /x\n");
    assert!(err.contains("ADD failed: http://127.0.0.1:1/nothing could not be fetched"), "{err}");
    // A failing RUN: the step's exit code, Docker's message, the output before it.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo before-failing; exit 3\n").unwrap();
    let out = build(&d, &ctx, &["-t", "built"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("before-failing"), "{out:?}");
    assert!(out.stderr.contains("The command '/bin/sh -c echo before-failing; exit 3' returned a non-zero code: 3"), "{out:?}");
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout.lines().count(), 1, "Docker keeps the failed step's container");
    let out = build(&d, &ctx, &["--force-rm", "-t", "built"]);
    assert_eq!(out.code, 3);
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout.lines().count(), 1, "--force-rm kept the failed container");
    // A context over the limit.
    std::fs::write(ctx.join("big"), vec![7u8; 100 * 1024]).unwrap();
    assert!(refused("FROM busybox\n").contains("the build context is larger than the limit of 65536 bytes"));
    std::fs::remove_file(ctx.join("big")).unwrap();
    // The API itself: 400 with the line for a parse error, malformed buildargs, a hostile tar.
    let tar_of = |entries: &[(&str, &[u8])]| {
        let raw: Vec<(&str, tar::EntryType, &str, &[u8])> = entries.iter().map(|(n, d)| (*n, tar::EntryType::Regular, "", *d)).collect();
        berth_tests::raw_layer(&raw)
    };
    let r = d.api("POST", "/build", Some("application/x-tar"), &tar_of(&[("Dockerfile", b"FROM busybox\nBOGUS\n")]));
    assert_eq!((r.status, r.json()["message"].as_str().unwrap()), (400, "dockerfile parse error on line 2: unknown instruction: BOGUS"));
    let r = d.api("POST", "/build", Some("application/x-tar"), &tar_of(&[("Dockerfile", b"FROM busybox\n"), ("../escaped", b"x")]));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!d.root.join("escaped").exists() && !d.data_root().join("escaped").exists());
    let r = d.api("POST", "/build?buildargs=%7Bnot-json", Some("application/x-tar"), b"");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("invalid buildargs"));
    assert_eq!(d.docker(&["images", "--filter", "reference=built", "-q"]).ok().stdout, "", "a failed build left a tagged image");
    let tmp = d.data_root().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("build"))
        .collect();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

/// `docker build -t never CTX` left running, its output to `stdout`.
fn spawn_build(d: &Daemon, ctx: &Path, stdout: std::process::Stdio) -> std::process::Child {
    std::process::Command::new("docker")
        .args(["build", "-t", "never", ctx.to_str().unwrap()])
        .env("DOCKER_HOST", d.host())
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A client that goes away mid-build stops it: the running step's container is removed and
/// nothing but cache images stays, which `builder prune` removes.
#[test]
fn an_interrupted_build_leaves_only_cache() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let ctx = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nENV A=1\nRUN echo started; sleep 60\n")]);
    let mut cli = spawn_build(&d, &ctx, std::process::Stdio::piped());
    let mut stdout = cli.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("started") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the build ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    cli.kill().unwrap();
    cli.wait().unwrap();
    drop(stdout);
    berth_tests::eventually("the step's container to go", Duration::from_secs(20), || d.docker(&["ps", "-aq"]).ok().stdout.is_empty());
    assert_eq!(d.docker(&["images", "--filter", "reference=never", "-q"]).ok().stdout, "");
    // The removal of the step's container may still be finishing; then its image is in use.
    berth_tests::eventually("builder prune to remove the ENV step's image", Duration::from_secs(20), || {
        d.docker(&["builder", "prune", "-f"]).ok().stdout.contains("sha256:")
    });
    assert_eq!(d.docker(&["images", "-aq", "--filter", "dangling=true"]).ok().stdout, "");
}

/// A daemon killed mid-build: at its next start the step's container (still running: RUN
/// steps live through a restart like any container) is removed.
#[test]
fn a_build_step_left_by_a_killed_daemon_is_removed_at_start() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    let ctx = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nRUN echo started; sleep 60\n")]);
    let mut cli = spawn_build(&d, &ctx, std::process::Stdio::null());
    berth_tests::eventually("the RUN step to run", Duration::from_secs(20), || {
        d.docker(&["ps", "-q", "--filter", "label=org.berth.build-step"]).ok().stdout.lines().count() == 1
    });
    d.kill9();
    let _ = cli.kill();
    let _ = cli.wait();
    d.spawn();
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout, "", "the interrupted step's container is still there");
    let recovery = d.api("GET", "/info", None, b"").json();
    let said = recovery.to_string();
    assert!(said.contains("of an interrupted build step"), "the start-up recovery does not say it: {said}");
}

/// A step's standard error comes marked red, as dockerd sends it; `--cache-from` limits the
/// cache to the images it names.
#[test]
fn step_errors_output_and_cache_from() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let ctx = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nENV X=1\nRUN >&2 echo to-stderr; echo to-stdout\n")]);
    let out = build(&d, &ctx, &["-t", "first"]).ok();
    assert!(out.stdout.contains("\x1b[91mto-stderr\n\x1b[0m"), "{out:?}");
    assert!(out.stdout.contains("to-stdout\n"), "{out:?}");
    assert!(cached_steps(&build(&d, &ctx, &["--cache-from", "nosuchimage", "-t", "second"]).ok().stdout).is_empty());
    assert_eq!(cached_steps(&build(&d, &ctx, &["--cache-from", "first", "-t", "third"]).ok().stdout), vec![2, 3]);
    // The build's limits reach its RUN steps; a bad one is refused before anything runs.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo \"nofile=$(ulimit -n)\"\n").unwrap();
    let out = build(&d, &ctx, &["--ulimit", "nofile=512:512", "--memory", "64m", "--cpu-quota", "50000"]).ok();
    assert!(out.stdout.contains("nofile=512\n"), "{out:?}");
    let out = build(&d, &ctx, &["--ulimit", "nofile=10:5"]);
    assert!(out.code != 0 && out.stderr.contains("soft limit must be less than or equal to hard limit"), "{out:?}");
}

/// `berth build`: -f inside the context, --build-arg, -q printing the ID.
#[test]
fn berth_build_cli() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let ctx = context(&d, "ctx", &[("sub/Dockerfile.x", "FROM busybox\nARG A\nRUN echo \"a=$A\" > /a\nCMD [\"cat\", \"/a\"]\n")]);
    let out = d
        .berth(&[
            "build",
            "-q",
            "-t",
            "cli-built",
            "-f",
            ctx.join("sub/Dockerfile.x").to_str().unwrap(),
            "--build-arg",
            "A=1",
            ctx.to_str().unwrap(),
        ])
        .ok();
    let id = out.stdout.trim();
    assert!(id.starts_with("sha256:"), "{out:?}");
    assert_eq!(inspect(&d, "cli-built", "{{.Id}}"), id);
    assert_eq!(d.berth(&["run", "--rm", "cli-built"]).ok().stdout, "a=1\n");
}
