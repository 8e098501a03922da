//! Build tasks that need more than `cargo build`, run as `cargo xtask TASK`:
//!
//! - `assets`: the man pages (credsync(8) and one per subcommand, generated
//!   from the command line's definition; credsync.toml(5), written by hand in
//!   `packaging/man/`) and the bash, zsh and fish completions, into
//!   `target/assets/`; credsync-web(8) and credsync-fleet(8), each for its
//!   own package, into `target/assets/man-web/` and `target/assets/man-fleet/`.
//!   Generated at every build, never committed.
//! - `deb`: the assets and the PAM module, then `cargo deb` for credsync,
//!   credsync-web and credsync-fleet (metadata in each Cargo.toml), giving
//!   `target/debian/credsync_VERSION-1_ARCH.deb`,
//!   `target/debian/credsync-web_VERSION-1_ARCH.deb` and
//!   `target/debian/credsync-fleet_VERSION-1_ARCH.deb`.
//! - `rpm`: the assets, the release binaries and the PAM module, then `cargo generate-rpm`
//!   for each, giving `target/generate-rpm/credsync-VERSION-1.ARCH.rpm`,
//!   `target/generate-rpm/credsync-web-VERSION-1.ARCH.rpm` and
//!   `target/generate-rpm/credsync-fleet-VERSION-1.ARCH.rpm`.
//!
//! The packaging metadata and the reasons behind it: README, "Installing on a real system".

use clap_complete::Shell;
use clap_mangen::Man;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The top-level page's DESCRIPTION, longer than `--help`'s one line.
const DESCRIPTION: &str = "\
credsync changes a user's password in both places an appliance keeps it: the \
Linux account in /etc/shadow, written as shadow-utils writes it, and the \
application's own credential record, an Argon2id hash in an SQLite store \
under /var/lib/credsync, which the appliance's CLI, GUI and API log in \
against. Both change in one operation, and the user's sessions are revoked.\n\n\
At every service start, credsync sync reconciles the two, so that a \
deliberate change made on either side (with passwd(1), chpasswd(8) or \
credsync) is kept, and a rollback of /etc/shadow to an old image is undone.\n\n\
Installed setuid root, credsync lets ordinary users change their own \
password after checking the current one through PAM (the credsync service in \
/etc/pam.d). Run by root (for example through sudo), it changes any \
account's password, recovers a lost one in one step, and imports batches.";

/// Each subcommand page's DESCRIPTION, by the page's name.
const SUBCOMMAND_DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "credsync-passwd",
        "Changes a password in /etc/shadow and in the application's record at once. \
         Without USER, the caller's own password: credsync asks for the current \
         password and checks it through the credsync PAM service, then asks for the \
         new one twice (up to three tries when the policy refuses it). Root may name \
         any USER and is not asked for a current password. The new password is \
         judged by the password policy (credsync.toml(5)) before anything is written.",
    ),
    (
        "credsync-set",
        "The appliance CLI's words for a self-service change: credsync set password.",
    ),
    (
        "credsync-set-password",
        "Changes the caller's own password, as credsync passwd without USER does.",
    ),
    (
        "credsync-recover",
        "The administrator's recovery of a lost password, in one step: sets USER's \
         password in both stores, clears the failed-login tally that locked the \
         account, and revokes the user's sessions. Replaces 'passwd USER, then log in \
         to the appliance and change it again'. Root only.",
    ),
    (
        "credsync-sync",
        "Reconciles the application's record with /etc/shadow; the boot unit \
         credsync-sync.service runs it at every start, before the application. A \
         deliberate change made on the Linux side (passwd, chpasswd, usermod, passwd -l) \
         is adopted into the record; a rollback of /etc/shadow to an older hash is \
         undone from the record; an interrupted change is completed or dropped. \
         Root only.",
    ),
    (
        "credsync-status",
        "Shows each managed account: whether the two stores agree, when the password \
         expires, and the failed-login count. Users see only their own account.",
    ),
    (
        "credsync-verify",
        "Checks a password against the application's record, as the appliance's login \
         does, and counts failures in pam_faillock's tally. Exit status 0 when it \
         matches; see credsync(8) for the others. Prints nothing on success.",
    ),
    (
        "credsync-api",
        "Talks to the service, credsyncd(8), as the appliance's applications do.",
    ),
    (
        "credsync-api-call",
        "Calls one method of the varlink interface io.credsync.Credentials on \
         credsyncd's socket and prints each reply's parameters as one JSON line. \
         The process takes on its caller's identity for good before it connects, so \
         the service authorizes the caller, never the setuid root. Passwords go on \
         standard input (PARAMETERS given as -), never on the command line. An error \
         reply is one line on standard error and an exit status as credsync(8) lists \
         them: 1 for AuthenticationFailed or PermissionDenied, 8 for PolicyRefused or \
         TooSoon, 6 for NoSuchUser or InvalidArgument, 5 for Busy, 13 for Locked, 2 \
         for varlink's own errors, 3 when the service can't be reached.",
    ),
    (
        "credsync-import",
        "Reads user:password lines from standard input and changes every password in \
         both stores, all or nothing: one bad line refuses the whole batch, naming \
         the line. Like chpasswd(8), but with one rewrite of /etc/shadow for the batch \
         and the hashes computed on every core. Root only.",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str);
    let outcome = match task {
        Some("assets") => assets(),
        // cargo-deb builds each package's own binary itself (the setuid CLI,
        // the web page, the fleet's); the PAM module and the service are
        // built first, as they are assets of credsync's package.
        Some("deb") => tool("deb", CARGO_DEB)
            .and_then(|()| assets())
            .and_then(|()| {
                cargo(
                    &[
                        "build",
                        "--release",
                        "--locked",
                        "-p",
                        "pam_credsync",
                        "-p",
                        "credsyncd",
                    ],
                    &[],
                )
            })
            .and_then(|()| cargo(&["deb", "--locked"], &args[1..]))
            .and_then(|()| cargo(&["deb", "--locked", "-p", "credsync-web"], &args[1..]))
            .and_then(|()| cargo(&["deb", "--locked", "-p", "credsync-fleet"], &args[1..])),
        Some("rpm") => tool("generate-rpm", CARGO_GENERATE_RPM)
            .and_then(|()| assets())
            .and_then(|()| {
                cargo(
                    &[
                        "build",
                        "--release",
                        "--locked",
                        "-p",
                        "credsync",
                        "-p",
                        "pam_credsync",
                        "-p",
                        "credsyncd",
                        "-p",
                        "credsync-web",
                        "-p",
                        "credsync-fleet",
                    ],
                    &[],
                )
            })
            .and_then(|()| cargo(&["generate-rpm"], &args[1..]))
            .and_then(|()| cargo(&["generate-rpm", "-p", "crates/credsync-web"], &args[1..]))
            .and_then(|()| cargo(&["generate-rpm", "-p", "crates/credsync-fleet"], &args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask assets | deb [cargo-deb options] | rpm [cargo-generate-rpm options]"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The packaging tools, at the versions the metadata in Cargo.toml was
/// written for; installed from crates.io when missing.
const CARGO_DEB: &str = "cargo-deb@3.8.0";
const CARGO_GENERATE_RPM: &str = "cargo-generate-rpm@0.21.1";

/// Installs `cargo SUBCOMMAND` at the version `spec` (`crate@version`) names,
/// unless that version is already there.
fn tool(subcommand: &str, spec: &str) -> io::Result<()> {
    let (krate, version) = spec.split_once('@').expect("a crate@version spec");
    let installed = Command::new(cargo_path())
        .args([subcommand, "--version"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if installed.as_deref() == Some(&format!("{krate} {version}")) {
        return Ok(());
    }
    eprintln!(
        "xtask: cargo {subcommand} is {}; installing {spec}",
        installed.as_deref().unwrap_or("missing")
    );
    cargo(&["install", "--locked", "--force", spec], &[])
}

fn cargo_path() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The repository's root (xtask's parent directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

fn cargo(task: &[&str], extra: &[String]) -> io::Result<()> {
    let status = Command::new(cargo_path())
        .args(task)
        .args(extra)
        .current_dir(root())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cargo {} failed ({status})",
            task.join(" ")
        )))
    }
}

fn assets() -> io::Result<()> {
    let out = root().join("target/assets");
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    man_pages(
        &out.join("man"),
        &out.join("man-web"),
        &out.join("man-fleet"),
    )?;
    completions(&out.join("completions"))?;
    eprintln!("xtask: man pages and completions in {}", out.display());
    Ok(())
}

/// Subcommands that hand over to another package's program, whose
/// hand-written page documents them: `credsync fleet` runs credsync-fleet,
/// and a generated credsync-fleet(8) in credsync's package would be the
/// same file as the one in credsync-fleet's.
const HANDED_OVER: &[&str] = &["fleet"];

/// credsync(8), one page per subcommand (credsync-passwd(8), …), and the
/// hand-written credsync.toml(5), pam_credsync(8) and credsyncd(8), each gzipped as Debian
/// policy asks; the hand-written credsync-web(8) in `web_dir` and
/// credsync-fleet(8) in `fleet_dir`, out of reach of the main package's
/// `man/*.8.gz`.
fn man_pages(dir: &Path, web_dir: &Path, fleet_dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut top = credsync::cli::command()
        .long_about(DESCRIPTION)
        .subcommand_help_heading("COMMANDS");
    top.build();
    // Every page carries the same date and version.
    let date = release_date()?;
    let version = top.get_version().unwrap_or_default().to_owned();
    let mut pages = vec![(top.clone(), true)];
    for sub in top
        .get_subcommands()
        .filter(|sub| !HANDED_OVER.contains(&sub.get_name()))
    {
        pages.push((sub.clone(), false));
        pages.extend(sub.get_subcommands().map(|c| (c.clone(), false)));
    }
    for (cmd, is_top) in pages {
        let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
        let cmd = match SUBCOMMAND_DESCRIPTIONS
            .iter()
            .find(|(page, _)| *page == name)
        {
            Some((_, description)) => cmd.long_about(*description),
            None if is_top => cmd,
            None => return Err(io::Error::other(format!("{name}: no DESCRIPTION written"))),
        };
        let mut roff = Vec::new();
        render(cmd, is_top, &date, &version, &mut roff)?;
        let roff = code_in_bold(&String::from_utf8_lossy(&roff));
        write_gzip(&dir.join(format!("{name}.8.gz")), roff.as_bytes())?;
    }
    fs::create_dir_all(web_dir)?;
    fs::create_dir_all(fleet_dir)?;
    for (page, dir) in [
        ("credsync.toml.5", dir),
        ("pam_credsync.8", dir),
        ("credsyncd.8", dir),
        ("credsync-web.8", web_dir),
        ("credsync-fleet.8", fleet_dir),
    ] {
        let text = fs::read_to_string(root().join("packaging/man").join(page))?
            .replace("@DATE@", &date)
            .replace("@VERSION@", &version);
        write_gzip(&dir.join(format!("{page}.gz")), text.as_bytes())?;
    }
    Ok(())
}

/// The pages' date: that of the newest entry in the Debian changelog
/// (` -- Name <mail>  Thu, 26 Nov 2026 12:00:00 +0000`), as YYYY-MM-DD, so
/// the same source always gives the same pages.
fn release_date() -> io::Result<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let changelog = fs::read_to_string(root().join("packaging/debian/changelog"))?;
    let date = changelog
        .lines()
        .find_map(|line| line.strip_prefix(" -- "))
        .and_then(|trailer| trailer.split_once(">  "))
        .map(|(_, date)| date.split_whitespace().collect::<Vec<_>>());
    match date.as_deref() {
        Some([_, day, month, year, ..]) => {
            let month = MONTHS.iter().position(|m| m == month).map(|m| m + 1);
            match (day.parse::<u32>(), month) {
                (Ok(day), Some(month)) => Ok(format!("{year}-{month:02}-{day:02}")),
                _ => Err(io::Error::other(
                    "packaging/debian/changelog: a date I can't read",
                )),
            }
        }
        _ => Err(io::Error::other(
            "packaging/debian/changelog: no dated entry",
        )),
    }
}

fn render(
    cmd: clap::Command,
    is_top: bool,
    date: &str,
    version: &str,
    w: &mut Vec<u8>,
) -> io::Result<()> {
    let man = Man::new(cmd)
        .section("8")
        .date(date)
        .manual("System Administration")
        .source(format!("credsync {version}"));
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    if is_top {
        man.render_subcommands_section(w)?;
        w.write_all(exit_status().as_bytes())?;
        w.write_all(FILES.as_bytes())?;
    }
    w.write_all(see_also(is_top).as_bytes())
}

/// EXIT STATUS, from the table the code itself uses.
fn exit_status() -> String {
    let mut section = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in credsync_core::error::exit::MEANINGS {
        section.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff_text(meaning)));
    }
    section
}

const FILES: &str = "\
.SH FILES
.TP
\\fI/etc/credsync/credsync.toml\\fR
configuration; see \\fBcredsync.toml\\fR(5)
.TP
\\fI/etc/pam.d/credsync\\fR
the PAM service that checks a user's current password
.TP
\\fI/var/lib/credsync/credsync.db\\fR
the application's credential record (SQLite; mode 0600, directory 0700)
.TP
\\fI/etc/shadow\\fR, \\fI/etc/security/opasswd\\fR
the Linux account's password and its history
";

fn see_also(is_top: bool) -> String {
    let pages = if is_top {
        "\\fBcredsync.toml\\fR(5), \\fBpasswd\\fR(1), \\fBchpasswd\\fR(8), \\fBshadow\\fR(5), \\fBpam\\fR(8), \\fBpam_faillock\\fR(8)"
    } else {
        "\\fBcredsync\\fR(8), \\fBcredsync.toml\\fR(5)"
    };
    format!(".SH \"SEE ALSO\"\n{pages}\n")
}

/// The help texts' `code` spans (Markdown, as `--help` shows them) in bold,
/// as man pages set commands and file names.
fn code_in_bold(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut parts = page.split('`');
    out.push_str(parts.next().unwrap_or_default());
    let mut bold = false;
    for part in parts {
        bold = !bold;
        out.push_str(if bold { "\\fB" } else { "\\fR" });
        out.push_str(part);
    }
    assert!(!bold, "an unpaired ` in a help text");
    out
}

/// Plain text as roff: a backslash as `\e`, hyphens as `\-`, and a leading
/// dot or quote escaped.
fn roff_text(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.chars().next() {
        Some('.' | '\'') => format!("\\&{text}"),
        _ => text,
    }
}

fn completions(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = credsync::cli::command();
        clap_complete::generate_to(shell, &mut cmd, "credsync", dir)?;
    }
    Ok(())
}

/// gzip -9n: best compression and no name or time in the header, so the
/// same page always gives the same bytes.
fn write_gzip(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes)?;
    fs::write(path, gz.finish()?)
}
