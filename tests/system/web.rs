//! credsync-web, the self-service page (Profile → Change Password), as an
//! appliance runs it: credsyncd as root in the sandbox over the real PAM
//! stack, credsync-web as its own unprivileged user `credsync-web` (a member
//! of `[api] groups`) talking only to credsyncd's socket, and a real headless
//! Chromium driven over WebDriver (chromedriver on 127.0.0.1). Every test that
//! changes a password checks both stores afterwards (pam_unix through
//! `pamtester`, the record through `verify`); every refusal checks that
//! neither store moved.
//!
//! The HTTP-level tests (headers, cookies, CSRF, limits, TLS) speak HTTP/1.1
//! over a plain TCP socket, so that each byte sent and received is the test's.
//!
//! Screenshots of the login page, the change form with refusals and the
//! success page are saved under `target/tmp/web-screenshots/`.

use crate::api::{Service, Settings, assert_unchanged, stores};
use crate::harness::Sandbox;
use crate::{NEW, OLD, OTHER};
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The page's own system user, as the package makes it.
const WEB_USER: &str = "credsync-web";
const WRONG: &str = "Wrong#Guess-2024";
/// How long a page may take to show what a test waits for.
const SHOWN: Duration = Duration::from_secs(20);

// ---- The appliance: credsyncd, credsync-web, alice and bob ----

struct Appliance {
    sb: Sandbox,
    service: Service,
    web: Web,
}

/// `settings` for credsyncd with `credsync-web` as the application group.
fn settings() -> Settings {
    Settings::fast().set("api", "groups", r#"["credsync-web"]"#)
}

/// alice (OLD) and bob (OTHER) managed; credsyncd under `settings`;
/// credsync-web with `web_toml` as its config file.
fn appliance_with(settings: &Settings, web_toml: &str) -> Appliance {
    let sb = Sandbox::new();
    sb.useradd("alice");
    sb.useradd("bob");
    sb.enrol("alice", OLD);
    sb.enrol("bob", OTHER);
    sb.root_sh(
        &format!(
            "useradd --system --user-group --no-create-home --shell /usr/sbin/nologin {WEB_USER}"
        ),
        "",
    )
    .expect_ok("the page's system user");
    // pam_faillock's tallies where the sandbox may write them.
    sb.keep_tallies_in_run();
    let service = Service::start(&sb, settings);
    let web = Web::start(&sb, service.socket(), web_toml);
    Appliance { sb, service, web }
}

fn appliance() -> Appliance {
    appliance_with(&settings(), "")
}

/// The page's binary, beside credsync (built by `cargo build --workspace`).
fn credsync_web() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_credsync")).with_file_name("credsync-web");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace (cargo build --workspace --features fault-injection) before the tests",
        path.display()
    );
    path
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// credsync-web running as `credsync-web` in the sandbox; killed when dropped.
struct Web {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Web {
    fn start(sb: &Sandbox, api_socket: &str, web_toml: &str) -> Web {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = sb.scratch(&format!("web-{n}"));
        let config = dir.join("web.toml");
        std::fs::write(&config, web_toml).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = dir.join("credsync-web.log");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let program = credsync_web();
        let child = sb.spawn_root(
            "setpriv".as_ref(),
            &[
                format!("--reuid={WEB_USER}").as_ref(),
                format!("--regid={WEB_USER}").as_ref(),
                "--init-groups".as_ref(),
                "--".as_ref(),
                program.as_os_str(),
                "--listen".as_ref(),
                listen.as_ref(),
                "--api".as_ref(),
                api_socket.as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
            ],
            &[],
            &log,
        );
        let mut web = Web { child, port, log };
        web.wait_listening();
        web
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "credsync-web exited before listening ({status}):\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "credsync-web never listened:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- The browser ----

/// chromedriver on 127.0.0.1, with a temporary HOME and TMPDIR (Chromium
/// writes under both); every session it opens is a separate Chromium with
/// its own profile, so two sessions share no cookie.
struct Driver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    sessions: AtomicUsize,
}

impl Driver {
    fn start() -> Driver {
        for (tool, package) in [
            ("/usr/bin/chromium", "chromium"),
            ("/usr/bin/chromedriver", "chromium-driver"),
        ] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: install {package} (scripts/setup.sh does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .env("HOME", dir.path())
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            dir,
            sessions: AtomicUsize::new(0),
        }
    }

    async fn browser(&self) -> Client {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        let profile = self.dir.path().join(format!("profile-{n}"));
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a browser test's steps on a runtime of its own.
fn in_browser<F: std::future::Future<Output = ()>>(steps: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(steps);
}

/// Polls the page until it shows `text`; its source.
async fn shows(browser: &Client, text: &str) -> String {
    let deadline = Instant::now() + SHOWN;
    loop {
        let source = browser.source().await.expect("the page's source");
        if source.contains(text) {
            return source;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {text:?}; it shows:\n{source}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn path_of(browser: &Client) -> String {
    browser.current_url().await.unwrap().path().to_owned()
}

async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn press(browser: &Client, label: &str) {
    browser
        .find(Locator::XPath(&format!(
            "//button[normalize-space()='{label}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("no button {label:?}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Logs in with the right password: Profile is shown.
async fn log_in_to_profile(browser: &Client, web: &Web, user: &str, password: &str) {
    log_in(browser, web, user, password).await;
    shows(browser, "<h1>Profile</h1>").await;
}

async fn log_in(browser: &Client, web: &Web, user: &str, password: &str) {
    browser.goto(&web.url("/login")).await.unwrap();
    type_into(browser, "user", user).await;
    type_into(browser, "password", password).await;
    press(browser, "Log in").await;
}

/// From Profile, the seed's steps: Change Password, the three fields, Save.
async fn change(browser: &Client, web: &Web, current: &str, new: &str, confirm: &str) {
    browser.goto(&web.url("/profile")).await.unwrap();
    shows(browser, "<h1>Profile</h1>").await;
    browser
        .find(Locator::LinkText("Change Password"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shows(browser, "<h1>Change Password</h1>").await;
    type_into(browser, "current", current).await;
    type_into(browser, "new", new).await;
    type_into(browser, "confirm", confirm).await;
    press(browser, "Save").await;
}

/// Saves a screenshot under target/tmp/web-screenshots/.
async fn screenshot(browser: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The text of the element `id`.
async fn text_of(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .text()
        .await
        .unwrap()
}

fn failed_logins(sb: &Sandbox, user: &str) -> i64 {
    sb.status_row(user)["failed_logins"].as_i64().unwrap_or(0)
}

// ---- The seed's procedure, in a browser ----

#[test]
fn log_in_change_the_password_and_log_in_again_with_the_new_one() {
    let a = appliance();
    let driver = Driver::start();
    in_browser(async {
        let browser = driver.browser().await;
        browser.goto(&a.web.url("/login")).await.unwrap();
        shows(&browser, "autocomplete=\"username\"").await;
        screenshot(&browser, "login").await;
        log_in_to_profile(&browser, &a.web, "alice", OLD).await;
        assert_eq!(path_of(&browser).await, "/profile");
        assert_eq!(text_of(&browser, "profile-user").await, "alice");

        change(&browser, &a.web, OLD, NEW, NEW).await;
        let page = shows(&browser, "Password updated successfully").await;
        screenshot(&browser, "success").await;
        assert!(
            !page.contains(NEW) && !page.contains(OLD),
            "a password is echoed in the page"
        );
        a.sb.assert_only_accepts("alice", NEW, OLD);
        assert_eq!(a.sb.status_row("alice")["source"], "api");

        log_in(&browser, &a.web, "alice", OLD).await;
        shows(&browser, "Wrong user name or password.").await;
        log_in_to_profile(&browser, &a.web, "alice", NEW).await;
        browser.close().await.unwrap();
    });
    let log = a.web.log();
    assert!(
        !log.contains(OLD) && !log.contains(NEW),
        "a password in the page's log:\n{log}"
    );
}

#[test]
fn a_policy_refusal_shows_each_rule_at_the_new_password() {
    let settings = settings()
        .set("policy", "min_length", "12")
        .set("policy", "min_classes", "3");
    let a = appliance_with(&settings, "");
    let before = stores(&a.sb, "alice");
    let driver = Driver::start();
    in_browser(async {
        let browser = driver.browser().await;
        log_in_to_profile(&browser, &a.web, "alice", OLD).await;
        change(&browser, &a.web, OLD, "short", "short").await;
        shows(&browser, "id=\"new-error\"").await;
        let rules = text_of(&browser, "new-error").await;
        let rules: Vec<&str> = rules.lines().collect();
        assert!(
            rules.len() >= 2,
            "every broken rule, one per line: {rules:?}"
        );
        assert!(
            rules.iter().any(|r| r.contains("12")),
            "the length rule: {rules:?}"
        );
        let described = browser
            .find(Locator::Id("new"))
            .await
            .unwrap()
            .attr("aria-describedby")
            .await
            .unwrap();
        assert_eq!(described.as_deref(), Some("new-error"));
        screenshot(&browser, "change-refused").await;
        browser.close().await.unwrap();
    });
    assert_unchanged(&a.sb, "alice", &before, "a policy refusal");
}

#[test]
fn a_confirmation_that_differs_is_caught_before_the_service_is_asked() {
    let settings = settings().set("policy.lockout", "failures", "5");
    let a = appliance_with(&settings, "");
    let before = stores(&a.sb, "alice");
    let driver = Driver::start();
    in_browser(async {
        let browser = driver.browser().await;
        log_in_to_profile(&browser, &a.web, "alice", OLD).await;
        // A wrong current password too: had the service been asked, it
        // would have counted a failure.
        change(&browser, &a.web, WRONG, NEW, "Fresh!Horse-Battery8").await;
        shows(&browser, "id=\"confirm-error\"").await;
        assert_eq!(
            text_of(&browser, "confirm-error").await,
            "The confirmation does not match the new password."
        );
        browser.close().await.unwrap();
    });
    assert_eq!(failed_logins(&a.sb, "alice"), 0, "the service was asked");
    assert_unchanged(&a.sb, "alice", &before, "a confirmation that differs");
}

#[test]
fn a_wrong_current_password_is_shown_at_its_field() {
    let a = appliance();
    let before = stores(&a.sb, "alice");
    let driver = Driver::start();
    in_browser(async {
        let browser = driver.browser().await;
        log_in_to_profile(&browser, &a.web, "alice", OLD).await;
        change(&browser, &a.web, WRONG, NEW, NEW).await;
        shows(&browser, "id=\"current-error\"").await;
        assert_eq!(
            text_of(&browser, "current-error").await,
            "The current password is wrong."
        );
        browser.close().await.unwrap();
    });
    assert_unchanged(&a.sb, "alice", &before, "a wrong current password");
    a.sb.assert_only_accepts("alice", OLD, NEW);
}

#[test]
fn lockout_after_the_policys_failures_is_shown_with_its_time() {
    let settings = settings()
        .set("policy.lockout", "failures", "2")
        .set("policy.lockout", "window_secs", "900")
        .set("policy.lockout", "lock_secs", "600");
    let a = appliance_with(&settings, "");
    let before = stores(&a.sb, "alice");
    let driver = Driver::start();
    in_browser(async {
        let browser = driver.browser().await;
        for _ in 0..2 {
            log_in(&browser, &a.web, "alice", WRONG).await;
            shows(&browser, "Wrong user name or password.").await;
        }
        // Now even the right password is refused, with the time left.
        log_in(&browser, &a.web, "alice", OLD).await;
        let page = shows(&browser, "This account is locked").await;
        let message = text_of(&browser, "login-error").await;
        assert!(
            message.contains("Try again in 10 minutes (at ")
                || message.contains("Try again in 9 minutes (at "),
            "{message}\n{page}"
        );
        assert_eq!(path_of(&browser).await, "/login");
        browser.close().await.unwrap();
    });
    assert_unchanged(&a.sb, "alice", &before, "a locked login");
}

#[test]
fn a_user_who_must_change_is_held_on_the_change_form() {
    let a = appliance();
    let temporary = "Temp#Pass-2024x";
    a.sb.credsync(
        &["recover", "alice", "--stdin", "--expire"],
        &format!("{temporary}\n"),
    )
    .expect_ok("recover with --expire");
    let driver = Driver::start();
    in_browser(async {
        let browser = driver.browser().await;
        log_in(&browser, &a.web, "alice", temporary).await;
        shows(
            &browser,
            "Your password must be changed before you can go on.",
        )
        .await;
        assert_eq!(path_of(&browser).await, "/profile/password");
        // Profile is out of reach until the change.
        browser.goto(&a.web.url("/profile")).await.unwrap();
        shows(&browser, "<h1>Change Password</h1>").await;
        assert_eq!(path_of(&browser).await, "/profile/password");
        type_into(&browser, "current", temporary).await;
        type_into(&browser, "new", NEW).await;
        type_into(&browser, "confirm", NEW).await;
        press(&browser, "Save").await;
        shows(&browser, "Password updated successfully").await;
        browser.close().await.unwrap();
    });
    a.sb.assert_only_accepts("alice", NEW, temporary);
    assert_eq!(a.sb.status_row("alice")["must_change"], false);
}

// ---- Sessions end on every change, whoever makes it ----

#[test]
fn a_change_in_one_browser_logs_out_the_other() {
    let a = appliance();
    let driver = Driver::start();
    in_browser(async {
        let first = driver.browser().await;
        let second = driver.browser().await;
        for browser in [&first, &second] {
            log_in_to_profile(browser, &a.web, "alice", OLD).await;
        }
        change(&first, &a.web, OLD, NEW, NEW).await;
        shows(&first, "Password updated successfully").await;

        second.goto(&a.web.url("/profile")).await.unwrap();
        shows(
            &second,
            "The password was changed, so every session was logged out.",
        )
        .await;
        assert_eq!(path_of(&second).await, "/login");
        first.close().await.unwrap();
        second.close().await.unwrap();
    });
    a.sb.assert_only_accepts("alice", NEW, OLD);
}

/// A change made outside the page: through credsync's CLI (a new epoch),
/// then through chpasswd without credsync (a change of /etc/shadow alone).
#[test]
fn a_change_with_the_cli_or_behind_credsyncs_back_logs_out_the_browser() {
    let a = appliance();
    let driver = Driver::start();
    in_browser(async {
        let browser = driver.browser().await;
        log_in_to_profile(&browser, &a.web, "alice", OLD).await;
        a.sb.credsync(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
            .expect_ok("recover");
        logged_out_soon(&browser, &a.web).await;

        log_in_to_profile(&browser, &a.web, "alice", NEW).await;
        a.sb.chpasswd("alice", OLD);
        logged_out_soon(&browser, &a.web).await;
        browser.close().await.unwrap();
    });
}

/// The next request after the service's event lands on the login page.
async fn logged_out_soon(browser: &Client, web: &Web) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        browser.goto(&web.url("/profile")).await.unwrap();
        if path_of(browser).await == "/login" {
            shows(
                browser,
                "The password was changed, so every session was logged out.",
            )
            .await;
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived the change:\n{}",
            web.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A change made while credsyncd is down (a restart, an upgrade) is not
/// missed: the page asks the service again once it is back.
#[test]
fn a_change_while_credsyncd_restarts_still_ends_the_session() {
    let mut a = appliance();
    let (session, _) = http_log_in(&a.web, "alice", OLD);
    let (bobs, _) = http_log_in(&a.web, "bob", OTHER);
    a.service.terminate();
    assert!(
        a.service.exit_within(Duration::from_secs(30)).is_some(),
        "credsyncd did not stop"
    );
    // While the service is away, a page is refused, but no one is logged out.
    let away = get(&a.web, "/profile", Some(&bobs));
    assert_eq!(away.status, 503, "{}", away.body);
    a.sb.credsync(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover while credsyncd is down");
    let dir = Path::new(a.service.socket())
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    a.service = Service::start_in(&a.sb, &settings(), dir);
    let after = get(&a.web, "/profile", Some(&session));
    assert_eq!(after.status, 303, "{}", after.body);
    assert_eq!(after.header("location"), Some("/login?ended=changed"));
    assert_secure_headers(&after, "the redirect of an ended session");
    // bob's session stands: only the changed user's end.
    assert_eq!(get(&a.web, "/profile", Some(&bobs)).status, 200);
    // And the new password logs in through the restarted service.
    http_log_in(&a.web, "alice", NEW);
    a.sb.assert_only_accepts("alice", NEW, OLD);
}

/// A wrong password and a user who doesn't exist get the same answer.
#[test]
fn an_unknown_user_and_a_wrong_password_look_the_same() {
    let a = appliance();
    let form = get(&a.web, "/login", None);
    let (cookie, csrf) = (form.cookie(), form.csrf());
    let attempt = |user: &str| {
        post(
            &a.web,
            "/login",
            Some(&cookie),
            &[("csrf", &csrf), ("user", user), ("password", WRONG)],
        )
    };
    let wrong = attempt("alice");
    let unknown = attempt("nobody-here");
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, wrong.status);
    let shown = |reply: &Reply, user: &str| reply.body.replace(&format!("value=\"{user}\""), "");
    assert_eq!(shown(&unknown, "nobody-here"), shown(&wrong, "alice"));
    assert_secure_headers(&wrong, "a refused login");
}

/// An expired account (shadow's field 8 past) has its own message, which
/// a wrong password for it does not get.
#[test]
fn an_expired_account_has_its_own_message() {
    let a = appliance();
    a.sb.root_sh("chage -E 2000-01-01 alice", "")
        .expect_ok("chage -E");
    let form = get(&a.web, "/login", None);
    let expired = post(
        &a.web,
        "/login",
        Some(&form.cookie()),
        &[("csrf", &form.csrf()), ("user", "alice"), ("password", OLD)],
    );
    assert_eq!(expired.status, 403, "{}", expired.body);
    assert!(
        expired
            .body
            .contains("This account has expired. Ask an administrator to renew it."),
        "{}",
        expired.body
    );
    assert_eq!(
        get(&a.web, "/profile", None).header("location"),
        Some("/login")
    );
}

// ---- HTTP: headers, cookies, CSRF, limits ----

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The cookie the reply sets (not one it clears), as `name=value`:
    /// the login form's before login, the session's after.
    fn cookie(&self) -> String {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .map(str::trim)
            .find(|pair| {
                pair.split_once('=')
                    .is_some_and(|(_, value)| !value.is_empty())
            })
            .unwrap_or_else(|| panic!("no cookie set: {:?}\n{}", self.headers, self.body))
            .to_owned()
    }

    /// Every Set-Cookie header.
    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The form's CSRF token.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

/// One request on its own connection; `raw` is sent as it is.
fn exchange(port: u16, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(raw);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn get(web: &Web, path: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    exchange(
        web.port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn post(web: &Web, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Reply {
    let body: Vec<String> = fields
        .iter()
        .map(|(n, v)| format!("{n}={}", encoded(v)))
        .collect();
    let body = body.join("&");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    exchange(
        web.port,
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Logs in over HTTP: the session's cookie (`name=value`) and its CSRF token.
fn http_log_in(web: &Web, user: &str, password: &str) -> (String, String) {
    let form = get(web, "/login", None);
    let anonymous = form.cookie();
    assert!(anonymous.starts_with("credsync_login="), "{anonymous}");
    let done = post(
        web,
        "/login",
        Some(&anonymous),
        &[
            ("csrf", &form.csrf()),
            ("user", user),
            ("password", password),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/profile"));
    let session = done.cookie();
    assert!(session.starts_with("credsync_session="), "{session}");
    assert!(
        done.set_cookies()
            .iter()
            .any(|c| c.starts_with("credsync_login=;") && c.contains("Max-Age=0")),
        "the login form's cookie outlived the login: {:?}",
        done.set_cookies()
    );
    assert_secure_headers(&done, "the login's redirect");
    let profile = get(web, "/profile", Some(&session));
    assert_eq!(profile.status, 200, "{}", profile.body);
    (session, profile.csrf())
}

#[track_caller]
fn assert_secure_headers(reply: &Reply, what: &str) {
    let csp = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    for directive in [
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
}

#[test]
fn every_page_sends_the_security_headers_and_a_strict_session_cookie() {
    let a = appliance();
    let login = get(&a.web, "/login", None);
    assert_eq!(login.status, 200);
    assert_secure_headers(&login, "/login");
    assert_eq!(login.header("cache-control"), Some("no-store"));
    assert!(login.body.contains("autocomplete=\"username\""));
    assert!(login.body.contains("autocomplete=\"current-password\""));

    let form = get(&a.web, "/login", None);
    let done = post(
        &a.web,
        "/login",
        Some(&form.cookie()),
        &[("csrf", &form.csrf()), ("user", "alice"), ("password", OLD)],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    for (what, set_cookie) in [
        ("the login form's", login.set_cookies()[0]),
        ("the session's", done.set_cookies()[0]),
    ] {
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(
                set_cookie.contains(flag),
                "{what} {set_cookie} lacks {flag}"
            );
        }
        assert!(
            !set_cookie.contains("Secure"),
            "Secure on plain HTTP: {set_cookie}"
        );
    }
    let id = done.cookie();
    let id = id.strip_prefix("credsync_session=").unwrap();
    assert!(
        id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "a 128-bit id or more: {id}"
    );
    let (session, _) = http_log_in(&a.web, "alice", OLD);
    assert_ne!(
        session.strip_prefix("credsync_session=").unwrap(),
        id,
        "two logins, one id"
    );
    for path in ["/profile", "/profile/password"] {
        let page = get(&a.web, path, Some(&session));
        assert_eq!(page.status, 200, "{path}");
        assert_secure_headers(&page, path);
        assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
    }
    let style = get(&a.web, "/static/style.css", None);
    assert_eq!(style.status, 200);
    assert_secure_headers(&style, "the style sheet");
    let missing = get(&a.web, "/nope", None);
    assert_eq!(missing.status, 404);
    assert_secure_headers(&missing, "a missing page");
    // Without a session, the pages send the browser to log in.
    let anonymous = get(&a.web, "/profile", None);
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/login"));
}

#[test]
fn a_csrf_token_missing_or_wrong_is_refused() {
    let settings = settings().set("policy.lockout", "failures", "5");
    let a = appliance_with(&settings, "");
    let before = stores(&a.sb, "alice");
    // The login form: a wrong token, no token, no cookie, another
    // browser's cookie.
    let form = get(&a.web, "/login", None);
    let anonymous = form.cookie();
    let elsewhere = get(&a.web, "/login", None).cookie();
    for (cookie, token) in [
        (Some(anonymous.as_str()), "0".repeat(64)),
        (Some(&anonymous), String::new()),
        (None, form.csrf()),
        (Some(&elsewhere), form.csrf()),
    ] {
        let reply = post(
            &a.web,
            "/login",
            cookie,
            &[("csrf", &token), ("user", "alice"), ("password", WRONG)],
        );
        assert_secure_headers(&reply, "a refused form");
        assert_eq!(
            reply.status, 403,
            "login with token {token:?}, cookie {cookie:?}"
        );
        assert!(
            reply.body.contains("This form has expired"),
            "{}",
            reply.body
        );
    }
    assert_eq!(
        failed_logins(&a.sb, "alice"),
        0,
        "a refused form reached the service"
    );

    // The change form, logged in.
    let (session, csrf) = http_log_in(&a.web, "alice", OLD);
    let change = |token: &str| {
        post(
            &a.web,
            "/profile/password",
            Some(&session),
            &[
                ("csrf", token),
                ("current", OLD),
                ("new", NEW),
                ("confirm", NEW),
            ],
        )
    };
    assert_eq!(change(&"f".repeat(64)).status, 403);
    assert_eq!(change("").status, 403);
    // Another session's token is wrong for this one.
    let (_, other_csrf) = http_log_in(&a.web, "bob", OTHER);
    assert_eq!(change(&other_csrf).status, 403);
    assert_unchanged(&a.sb, "alice", &before, "forged changes");
    // Logging out needs the token too.
    assert_eq!(
        post(&a.web, "/logout", Some(&session), &[("csrf", "x")]).status,
        403
    );
    assert_eq!(
        get(&a.web, "/profile", Some(&session)).status,
        200,
        "a forged logout ended the session"
    );
    // And the right one works.
    let done = change(&csrf);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Password updated successfully"));
    a.sb.assert_only_accepts("alice", NEW, OLD);
}

#[test]
fn requests_too_large_or_too_slow_are_refused_and_others_still_served() {
    let a = appliance_with(
        &settings(),
        "request_timeout_secs = 2\nmax_request_bytes = 4096\n",
    );
    let body = "a".repeat(100_000);
    let large = exchange(
        a.web.port,
        format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(large.status, 413, "{}", large.body);
    assert_secure_headers(&large, "a refused large body");
    let header = format!(
        "GET /login HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let huge_head = exchange(a.web.port, header.as_bytes());
    assert_eq!(huge_head.status, 431);

    // A client that sends half a request line and stops is dropped.
    let mut slow = TcpStream::connect(("127.0.0.1", a.web.port)).unwrap();
    slow.write_all(b"GET /login HT").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "a stalled request held its connection for {:?}",
        started.elapsed()
    );
    assert_eq!(
        get(&a.web, "/login", None).status,
        200,
        "the page stopped serving"
    );
}

#[test]
fn logins_from_one_address_are_limited_per_minute() {
    let settings = settings().set("policy.lockout", "failures", "10");
    let a = appliance_with(&settings, "login_attempts_per_minute = 3\n");
    let form = get(&a.web, "/login", None);
    let (cookie, csrf) = (form.cookie(), form.csrf());
    let attempt = || {
        post(
            &a.web,
            "/login",
            Some(&cookie),
            &[("csrf", &csrf), ("user", "alice"), ("password", WRONG)],
        )
    };
    for _ in 0..3 {
        let reply = attempt();
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(reply.body.contains("Wrong user name or password."));
    }
    let limited = attempt();
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_secure_headers(&limited, "a limited login");
    assert!(
        limited
            .body
            .contains("Too many login attempts from your address"),
        "{}",
        limited.body
    );
    // Another account from the same address is limited too: the limit is
    // the address's, and the refused attempt never reached the service.
    let other = post(
        &a.web,
        "/login",
        Some(&cookie),
        &[("csrf", &csrf), ("user", "bob"), ("password", OTHER)],
    );
    assert_eq!(other.status, 429);
    assert_eq!(failed_logins(&a.sb, "alice"), 3);
}

#[test]
fn over_tls_the_cookie_is_secure_and_hsts_is_sent() {
    let sb_settings = settings();
    // The certificate is made first, in a directory the page's user can read.
    let keys = tempfile::tempdir().unwrap();
    std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cert, key) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let web_toml = format!(
        "tls_certificate = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let a = appliance_with(&sb_settings, &web_toml);
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--dump-header",
            "-",
            "--output",
            "/dev/null",
            "--cacert",
        ])
        .arg(&cert)
        .arg(format!("https://127.0.0.1:{}/login", a.web.port))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.web.log()
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        cookie.contains("; secure") && cookie.contains("httponly"),
        "{cookie}"
    );
    // Plain HTTP on the TLS port gets no page.
    let plain = TcpStream::connect(("127.0.0.1", a.web.port)).and_then(|mut s| {
        s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        let mut bytes = Vec::new();
        let _ = s.read_to_end(&mut bytes);
        Ok(bytes)
    });
    assert!(!String::from_utf8_lossy(&plain.unwrap()).contains("Log in"));
}

#[test]
fn it_refuses_to_run_as_root() {
    let sb = Sandbox::new();
    let out = sb.root_sh(
        &format!(
            "exec {} --listen 127.0.0.1:{}",
            credsync_web().display(),
            free_port()
        ),
        "",
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("refusing to run as root"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
}
