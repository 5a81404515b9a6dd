//! Signing in from a browser: a login page, a session cookie and signing out. MLflow 3.17
//! leaves the browser to its basic-auth prompt, which cannot sign out and shows no page of its
//! own; mlox keeps answering basic credentials and tokens as MLflow does, and adds a session
//! for people. A session is a token of its own name, held in an `HttpOnly`, `SameSite=Strict`
//! cookie: pages on other sites never send it, and API writes must be JSON, which no page can
//! send across sites without the browser asking first, so a session cannot be ridden (CSRF).

use crate::credentials::{Gate, new_token, token_digest};
use crate::{Auth, Caller};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use mlox_core::auth::SESSION_TOKEN_NAME;
use serde::Deserialize;
use std::sync::Arc;

pub const COOKIE: &str = "mlox_session";
/// How long a browser stays signed in.
const SESSION_HOURS: i64 = 12;

pub(crate) fn router(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .with_state(auth)
}

/// The session secret a request's cookies carry, if any.
pub(crate) fn session_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// Only a path on this server: an absolute URL or `//host` would make the login page a
/// redirector to anywhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[derive(Deserialize)]
struct PageQuery {
    next: Option<String>,
    error: Option<String>,
}

async fn login_page(Query(query): Query<PageQuery>) -> Response {
    let next = escape(&safe_next(query.next.as_deref()));
    let message = match query.error.as_deref() {
        Some("locked") => {
            "<p class=\"error\" role=\"alert\">Too many failed sign-ins for this user: wait a minute and try again.</p>"
        }
        Some(_) => "<p class=\"error\" role=\"alert\">Wrong username or password.</p>",
        None => "",
    };
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · mlox</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f1f5f9; display: flex; justify-content: center; padding-top: 12vh; margin: 0; }}
form {{ background: white; padding: 28px 32px; border-radius: 10px; box-shadow: 0 2px 12px rgba(15,23,42,.12); display: flex; flex-direction: column; gap: 12px; width: 300px; }}
h1 {{ margin: 0 0 4px; font-size: 20px; color: #0f172a; }}
label {{ display: flex; flex-direction: column; gap: 4px; font-size: 13px; color: #334155; }}
input {{ font: inherit; padding: 8px 10px; border: 1px solid #cbd5e1; border-radius: 6px; }}
button {{ font: inherit; padding: 9px; border: 0; border-radius: 6px; background: #0f172a; color: white; cursor: pointer; }}
.error {{ color: #b91c1c; font-size: 13px; margin: 0; }}
</style></head>
<body><form method="post" action="login">
<h1>Sign in to mlox</h1>
{message}
<label>Username <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form></body></html>"#
    );
    let mut response = Html(page).into_response();
    // The page never sits in a frame (clickjacking of the password field).
    response
        .headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

#[derive(Deserialize)]
struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    next: Option<String>,
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn cookie(value: &str, max_age_seconds: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("mlox_session=; Path=/; Max-Age=0"))
}

/// `POST /login` with a form (the page) or JSON (scripts): a session cookie on success.
async fn login(State(auth): State<Arc<Auth>>, headers: HeaderMap, body: Bytes) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let form: Option<LoginForm> = if json {
        serde_json::from_slice(&body).ok()
    } else {
        serde_urlencoded_form(&body)
    };
    let Some(form) = form else {
        return (StatusCode::BAD_REQUEST, "Send username and password.").into_response();
    };
    let next = safe_next(form.next.as_deref());
    let failed = |reason: &str| {
        if json {
            crate::guard::challenge()
        } else {
            see_other(&format!(
                "login?error={reason}&next={}",
                percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
            ))
        }
    };
    let (Some(username), Some(password)) = (form.username, form.password) else {
        return failed("missing");
    };
    if let Gate::Locked(_) = auth.credentials.gate(&username) {
        return failed("locked");
    }
    let user = match crate::guard::check_password(&auth, &username, &password).await {
        Ok(Some(user)) => user,
        Ok(None) => return failed("wrong"),
        Err(err) => return mlox_tracking::error::error_response(&err),
    };
    let (secret, digest) = new_token();
    let expires_at = mlox_store::now_ms() + SESSION_HOURS * 3_600_000;
    if let Err(err) = auth
        .users
        .create_token(user.id, SESSION_TOKEN_NAME, &digest, Some(expires_at))
        .await
    {
        return mlox_tracking::error::error_response(&err);
    }
    let mut response = if json {
        axum::Json(serde_json::json!({ "user": user })).into_response()
    } else {
        see_other(&next)
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&secret, SESSION_HOURS * 3600));
    response
}

/// `POST /logout`: the session ends on the server and its cookie in the browser.
async fn logout(
    State(auth): State<Arc<Auth>>,
    axum::Extension(Caller(caller)): axum::Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    if let Some(secret) = session_secret(&headers) {
        if let Err(err) = auth
            .users
            .delete_token_by_digest(&token_digest(secret))
            .await
        {
            return mlox_tracking::error::error_response(&err);
        }
        auth.user_changed(&caller.username);
    }
    let mut response = axum::Json(serde_json::json!({})).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0));
    response
}

fn serde_urlencoded_form(body: &[u8]) -> Option<LoginForm> {
    let text = std::str::from_utf8(body).ok()?;
    let mut form = LoginForm {
        username: None,
        password: None,
        next: None,
    };
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|v| v.into_owned())
        };
        let value = decode(value)?;
        match decode(key)?.as_str() {
            "username" => form.username = Some(value),
            "password" => form.password = Some(value),
            "next" => form.next = Some(value),
            _ => {}
        }
    }
    Some(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_server_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/#/experiments")), "/#/experiments");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; mlox_session=abc; other=1"),
        );
        assert_eq!(session_secret(&headers), Some("abc"));
        assert_eq!(session_secret(&HeaderMap::new()), None);
    }

    #[test]
    fn forms_decode_and_markup_is_escaped() {
        let form = serde_urlencoded_form(b"username=al+ice&password=p%26w&next=%2F").unwrap_or(
            LoginForm {
                username: None,
                password: None,
                next: None,
            },
        );
        assert_eq!(form.username.as_deref(), Some("al ice"));
        assert_eq!(form.password.as_deref(), Some("p&w"));
        assert_eq!(escape("\"><script>"), "&quot;&gt;&lt;script&gt;");
    }
}
