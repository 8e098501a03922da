//! The pages: log in, Profile, Profile → Change Password, log out. Plain
//! HTML forms (no script); every POST carries its session's CSRF token; the
//! templates (askama, checked at compile time) escape every value.
//!
//! The page decides nothing about passwords: credsyncd checks them, applies
//! the policy and the lockout, and the page shows what it answered.
#![forbid(unsafe_code)]

use crate::api::{Api, Refused, Verified};
use crate::config::Config;
use crate::form::Form;
use crate::sessions::{
    Login, LoginStart, Revocations, Session, Sessions, is_token, random_token, same_token,
};
use crate::throttle::Throttle;
use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The session's cookie, and the login form's (its CSRF token, checked
/// against the form's copy: no session is held before login). With
/// `Secure`, the `__Host-` prefix binds them to this host and path, so that
/// no sibling subdomain can plant one.
const SESSION_COOKIE: &str = "credsync_session";
const LOGIN_COOKIE: &str = "credsync_login";
/// The longest user name passed on to the service (Linux allows 32).
const MAX_USER: usize = 256;
const STYLE: &str = include_str!("../static/style.css");

/// Everything the handlers share.
pub struct App {
    pub api: Api,
    pub sessions: Sessions,
    pub revocations: Revocations,
    /// Whether the `Monitor` stream is connected; while it is not, each
    /// request asks the service for its user's epoch instead.
    pub monitor_live: AtomicBool,
    pub throttle: Throttle,
    pub secure_cookie: bool,
    pub max_request_bytes: usize,
    pub request_timeout: std::time::Duration,
}

impl App {
    pub fn new(config: &Config) -> App {
        App {
            api: Api::new(&config.api, config.api_connections),
            sessions: Sessions::new(config.session_idle(), config.session_max()),
            revocations: Revocations::default(),
            monitor_live: AtomicBool::new(false),
            throttle: Throttle::new(config.login_attempts_per_minute),
            secure_cookie: config.secure_cookie || config.tls(),
            max_request_bytes: config.max_request_bytes,
            request_timeout: config.request_timeout(),
        }
    }
}

/// The client's address, set by the server for each connection (after
/// `trusted_proxies` are taken into account).
#[derive(Clone, Copy)]
pub struct Client(pub IpAddr);

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/profile") }))
        .route("/login", get(login_form).post(login))
        .route("/profile", get(profile))
        .route(
            "/profile/password",
            get(password_form).post(change_password),
        )
        .route("/logout", axum::routing::post(logout))
        .route("/static/style.css", get(style))
        .fallback(|| async {
            problem(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
        })
        .with_state(app)
}

// ---- Templates ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    user: &'a str,
    error: Option<String>,
    notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage<'a> {
    csrf: &'a str,
    user: &'a str,
    changed_at: &'a str,
    expires_in_days: Option<i64>,
}

#[derive(Template)]
#[template(path = "password.html")]
#[derive(Default)]
struct PasswordPage<'a> {
    csrf: &'a str,
    must_change: bool,
    form_error: Option<String>,
    current_error: Option<&'static str>,
    new_errors: Vec<String>,
    confirm_error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "done.html")]
struct DonePage<'a> {
    user: &'a str,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    title: &'a str,
    message: &'a str,
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, &ProblemPage { title, message })
}

fn with_cookie(mut response: Response, value: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn cookie_name(app: &App, name: &str) -> String {
    if app.secure_cookie {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

fn cookie(app: &App, name: &str, value: &str) -> String {
    let secure = if app.secure_cookie { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}",
        cookie_name(app, name)
    )
}

fn clear_cookie(app: &App, name: &str) -> String {
    let secure = if app.secure_cookie { "; Secure" } else { "" };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        cookie_name(app, name)
    )
}

/// The value of cookie `name`, if the browser sent exactly one.
fn cookie_value(app: &App, headers: &HeaderMap, name: &str) -> Option<String> {
    let name = cookie_name(app, name);
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned());
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

fn session_id(app: &App, headers: &HeaderMap) -> Option<String> {
    cookie_value(app, headers, SESSION_COOKIE)
}

/// A logged-in session that still stands, or where to send the browser.
async fn logged_in(app: &App, headers: &HeaderMap) -> Result<(String, Session), Response> {
    let to_login = |app: &App, reason: Option<&str>| {
        let target = match reason {
            Some(reason) => format!("/login?ended={reason}"),
            None => "/login".to_owned(),
        };
        with_cookie(
            Redirect::to(&target).into_response(),
            &clear_cookie(app, SESSION_COOKIE),
        )
    };
    let Some(id) = session_id(app, headers) else {
        return Err(to_login(app, None));
    };
    let Some(session) = app.sessions.get(&id) else {
        return Err(to_login(app, Some("timeout")));
    };
    let login = &session.login;
    let stands = if app.monitor_live.load(Ordering::Acquire) {
        app.revocations.stands(login)
    } else {
        // Without the stream, ask: a session must not outlive a change
        // because an event was missed. A service that can't answer gets
        // the request refused, but the session kept.
        match app.api.status(&login.user).await {
            Ok(account) => {
                app.revocations
                    .heard(&login.user, account.session_epoch, "");
                app.revocations.stands(login)
            }
            Err(Refused::NoSuchUser) => false,
            Err(_) => return Err(unavailable()),
        }
    };
    if !stands {
        app.sessions.end(&id);
        return Err(to_login(app, Some("changed")));
    }
    Ok((id, session))
}

async fn read_form(app: &App, body: Body) -> Result<Form, Response> {
    let limit = app.max_request_bytes;
    let bytes =
        match tokio::time::timeout(app.request_timeout, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => {
                return Err(problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request too large",
                    "The form sent more than this page accepts.",
                ));
            }
            Err(_) => {
                return Err(problem(
                    StatusCode::REQUEST_TIMEOUT,
                    "Request timed out",
                    "The form took too long to arrive.",
                ));
            }
        };
    let form = Form::parse(&bytes);
    // The body held passwords: wipe it when this is its only copy (hyper's
    // own read buffer is not ours to wipe; docs/design.md says so).
    if let Ok(mut unique) = bytes.try_into_mut() {
        zeroize::Zeroize::zeroize(&mut unique[..]);
    }
    form.ok_or_else(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The form was not valid UTF-8.",
        )
    })
}

fn bad_token() -> Response {
    problem(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or did not come from this page. Go back, reload the page and try again.",
    )
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
        "The password service is not available right now. Try again in a moment.",
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// "This account is locked ..." with the time left, as the CLI says it.
fn locked_message(until: Option<&str>, until_unix: Option<i64>) -> String {
    match (until, until_unix) {
        (Some(until), Some(unix)) => {
            let minutes = ((unix - unix_now()).max(0) + 59) / 60;
            let left = if minutes <= 1 {
                "about a minute".to_owned()
            } else {
                format!("{minutes} minutes")
            };
            format!("This account is locked after too many failed attempts. Try again in {left} (at {until}).")
        }
        _ => "This account is locked after too many failed attempts. Ask an administrator to unlock it.".to_owned(),
    }
}

// ---- Log in ----

#[derive(Deserialize)]
struct LoginQuery {
    ended: Option<String>,
}

async fn login_form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    if let Ok((_, session)) = logged_in(&app, &headers).await {
        let must_change = session.login.must_change;
        return Redirect::to(if must_change {
            "/profile/password"
        } else {
            "/profile"
        })
        .into_response();
    }
    let notice = match query.ended.as_deref() {
        Some("changed") => {
            Some("The password was changed, so every session was logged out. Log in again.")
        }
        Some("timeout") => Some("Your session has ended. Log in again."),
        Some("out") => Some("You have logged out."),
        _ => None,
    };
    // The browser's own token if it has one, so that a form opened in two
    // tabs stays valid in both.
    let token = cookie_value(&app, &headers, LOGIN_COOKIE)
        .filter(|t| is_token(t))
        .unwrap_or_else(random_token);
    let page = LoginPage {
        csrf: &token,
        user: "",
        error: None,
        notice,
    };
    with_cookie(
        html(StatusCode::OK, &page),
        &cookie(&app, LOGIN_COOKIE, &token),
    )
}

async fn login(
    State(app): State<Arc<App>>,
    Extension(Client(address)): Extension<Client>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match read_form(&app, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let Some(token) = cookie_value(&app, &headers, LOGIN_COOKIE).filter(|t| is_token(t)) else {
        return bad_token();
    };
    if !same_token(form.get("csrf"), &token) {
        return bad_token();
    }
    let user = form.get("user").trim();
    let again = |status: StatusCode, error: String| {
        let page = LoginPage {
            csrf: &token,
            user,
            error: Some(error),
            notice: None,
        };
        html(status, &page)
    };
    if let Err(wait) = app.throttle.attempt(address) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many login attempts from your address. Try again in {} seconds.",
                wait.as_secs().max(1)
            ),
        );
    }
    if user.is_empty() || form.get("password").is_empty() {
        return again(
            StatusCode::UNAUTHORIZED,
            "Enter your user name and password.".into(),
        );
    }
    if user.len() > MAX_USER {
        return again(
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.".into(),
        );
    }
    // Where the login begins: the epoch before the password is checked, so
    // that a change landing meanwhile revokes the session this opens. Its
    // answer waits until the password is known to be right, so that it
    // tells nothing of whether the user exists.
    let at = Instant::now();
    let before = app.api.status(user).await;
    let verified = match app.api.verify(user, form.get("password")).await {
        Ok(verified) => verified,
        // One message whether or not the user exists (or has a password).
        Err(
            Refused::AuthenticationFailed
            | Refused::NoSuchUser
            | Refused::NoPassword
            | Refused::PermissionDenied(_),
        ) => {
            return again(
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password.".into(),
            );
        }
        Err(Refused::Locked { until, until_unix }) => {
            return again(
                StatusCode::FORBIDDEN,
                locked_message(until.as_deref(), until_unix),
            );
        }
        Err(Refused::AccountExpired) => {
            return again(
                StatusCode::FORBIDDEN,
                "This account has expired. Ask an administrator to renew it.".into(),
            );
        }
        Err(Refused::InvalidArgument(_)) => {
            return again(
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password.".into(),
            );
        }
        Err(_) => return unavailable(),
    };
    let epoch = match before {
        Ok(account) => account.session_epoch,
        Err(_) => return unavailable(),
    };
    // A session the browser still had (another user's, say) ends here.
    if let Some(old) = session_id(&app, &headers) {
        app.sessions.end(&old);
    }
    let must_change = verified != Verified::Ok;
    let (id, _) = app.sessions.log_in(Login {
        user: user.to_owned(),
        start: LoginStart { epoch, at },
        must_change,
    });
    let target = if must_change {
        "/profile/password"
    } else {
        "/profile"
    };
    let response = with_cookie(
        Redirect::to(target).into_response(),
        &cookie(&app, SESSION_COOKIE, &id),
    );
    with_cookie(response, &clear_cookie(&app, LOGIN_COOKIE))
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_form(&app, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let Some(id) = session_id(&app, &headers) else {
        return bad_token();
    };
    match app.sessions.get(&id) {
        Some(session) if same_token(form.get("csrf"), &session.csrf) => {
            app.sessions.end(&id);
            with_cookie(
                Redirect::to("/login?ended=out").into_response(),
                &clear_cookie(&app, SESSION_COOKIE),
            )
        }
        Some(_) => bad_token(),
        None => Redirect::to("/login").into_response(),
    }
}

// ---- Profile ----

async fn profile(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (_, session) = match logged_in(&app, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let login = &session.login;
    if login.must_change {
        return Redirect::to("/profile/password").into_response();
    }
    let account = match app.api.status(&login.user).await {
        Ok(account) => account,
        Err(_) => return unavailable(),
    };
    let page = ProfilePage {
        csrf: &session.csrf,
        user: &login.user,
        changed_at: &account.changed_at,
        expires_in_days: account.password_expires_in_days,
    };
    html(StatusCode::OK, &page)
}

async fn password_form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (_, session) = match logged_in(&app, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page = PasswordPage {
        csrf: &session.csrf,
        must_change: session.login.must_change,
        ..PasswordPage::default()
    };
    html(StatusCode::OK, &page)
}

async fn change_password(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_form(&app, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let (id, session) = match logged_in(&app, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !same_token(form.get("csrf"), &session.csrf) {
        return bad_token();
    }
    let login = &session.login;
    let mut page = PasswordPage {
        csrf: &session.csrf,
        must_change: login.must_change,
        ..PasswordPage::default()
    };
    let (current, new, confirm) = (form.get("current"), form.get("new"), form.get("confirm"));
    // What the browser can be told without asking the service.
    if current.is_empty() {
        page.current_error = Some("Enter your current password.");
    }
    if new.is_empty() {
        page.new_errors.push("Enter a new password.".into());
    } else if new != confirm {
        page.confirm_error = Some("The confirmation does not match the new password.");
    }
    if page.current_error.is_some() || !page.new_errors.is_empty() || page.confirm_error.is_some() {
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    match app.api.change_password(&login.user, current, new).await {
        Ok(epoch) => {
            // Every other session of the user ends at its next request
            // (with the reason shown), this one now.
            app.revocations.changed(&login.user, epoch);
            app.sessions.end(&id);
            let done = DonePage { user: &login.user };
            return with_cookie(
                html(StatusCode::OK, &done),
                &clear_cookie(&app, SESSION_COOKIE),
            );
        }
        Err(Refused::AuthenticationFailed) => {
            page.current_error = Some("The current password is wrong.")
        }
        Err(Refused::PolicyRefused(rules)) => page.new_errors = rules,
        Err(Refused::TooSoon { allowed_from }) => {
            page.form_error = Some(format!(
                "The password was changed too recently: it can be changed again from {allowed_from}."
            ));
        }
        Err(Refused::Locked { until, until_unix }) => {
            page.form_error = Some(locked_message(until.as_deref(), until_unix));
        }
        Err(Refused::AccountExpired) => {
            page.form_error =
                Some("This account has expired. Ask an administrator to renew it.".into());
        }
        Err(Refused::NoPassword | Refused::NoSuchUser | Refused::PermissionDenied(_)) => {
            page.form_error = Some(
                "This account's password cannot be changed here. Ask an administrator.".into(),
            );
        }
        Err(Refused::InvalidArgument(reason)) => page.form_error = Some(reason),
        Err(Refused::Busy(_)) => {
            page.form_error = Some("The password service is busy. Try again in a moment.".into());
        }
        Err(Refused::Unavailable(_)) => return unavailable(),
    }
    html(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(secure_cookie: bool) -> App {
        App::new(&Config {
            secure_cookie,
            ..Config::default()
        })
    }

    fn cookies(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_only_alone() {
        let plain = app(false);
        let found = |value| session_id(&plain, &cookies(value));
        assert_eq!(
            found("a=1; credsync_session=abc; b=2").as_deref(),
            Some("abc")
        );
        assert_eq!(found("xcredsync_session=abc"), None);
        assert_eq!(
            found("credsync_session=a; credsync_session=b"),
            None,
            "a planted twin"
        );
        let secure = app(true);
        let found = |value| session_id(&secure, &cookies(value));
        assert_eq!(found("credsync_session=abc"), None, "no __Host- prefix");
        assert_eq!(found("__Host-credsync_session=abc").as_deref(), Some("abc"));
        assert!(
            cookie(&secure, SESSION_COOKIE, "abc")
                .starts_with("__Host-credsync_session=abc; Path=/;")
        );
        assert!(cookie(&secure, SESSION_COOKIE, "abc").ends_with("; Secure"));
    }

    #[test]
    fn values_are_escaped_in_the_page() {
        let page = LoginPage {
            csrf: "t",
            user: "\"><script>alert(1)</script>",
            error: Some("<b>".into()),
            notice: None,
        };
        let body = page.render().unwrap();
        assert!(!body.contains("<script>"), "{body}");
        assert!(
            body.contains("&#60;b&#62;") || body.contains("&lt;b&gt;"),
            "{body}"
        );
    }

    #[test]
    fn the_change_form_has_the_seeds_labels_and_autocomplete() {
        let page = PasswordPage {
            csrf: "t",
            new_errors: vec!["too short".into()],
            ..PasswordPage::default()
        };
        let body = page.render().unwrap();
        for text in [
            ">Current password</label>",
            ">New password</label>",
            ">Confirm</label>",
            ">Save</button>",
            "aria-describedby=\"new-error\"",
        ] {
            assert!(body.contains(text), "{text} missing:\n{body}");
        }
        assert_eq!(body.matches("autocomplete=\"new-password\"").count(), 2);
        assert_eq!(body.matches("autocomplete=\"current-password\"").count(), 1);
    }

    #[test]
    fn a_lock_says_how_long_is_left() {
        let message = locked_message(Some("12:30"), Some(unix_now() + 600));
        assert!(message.contains("10 minutes (at 12:30)"), "{message}");
    }
}
