//! The console's page shell (navigation, language switch, sign-out form, stylesheet, scripts) and
//! the small formatting helpers every page shares.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::console::i18n::{Lang, Msg};

/// The sections of the console, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Summary,
    Tasks,
    Schedules,
    Receipts,
}

/// What the shell of a signed-in page shows.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub lang: Lang,
    pub username: String,
    pub is_admin: bool,
    pub csrf: String,
    pub tab: Tab,
    /// This page's path and query without `lang`, for the language switch.
    pub here: String,
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2733;background:#f3f5f8}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1rem;padding:.6rem 1rem;background:#17324d;color:#fff}
header.top .brand{font-weight:700;font-size:1.1rem;margin-right:.5rem}
header.top nav{display:flex;flex-wrap:wrap;gap:.25rem}
header.top nav a{color:#dbe7f3;text-decoration:none;padding:.35rem .7rem;border-radius:6px}
header.top nav a.active,header.top nav a:hover{background:#2c557d;color:#fff}
header.top .who{margin-left:auto;display:flex;align-items:center;gap:.6rem;font-size:.9rem}
header.top .who a{color:#dbe7f3}
header.top .who button{background:none;border:1px solid #9fb8cf;color:#fff;border-radius:6px;padding:.25rem .6rem;cursor:pointer}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0 1rem}
h2{font-size:1.1rem;margin:0 0 .6rem}
.card{background:#fff;border:1px solid #dde3ea;border-radius:10px;padding:1rem;margin-bottom:1rem;overflow-x:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem}
table{border-collapse:collapse;width:100%;font-size:.93rem}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #e7ebf0;vertical-align:top}
th{color:#52606d;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:99px;font-size:.8rem;font-weight:600;background:#e4e9ef}
.badge.DEAD,.badge.REJECTED,.badge.ERROR,.badge.CONFLICT{background:#fde2e1;color:#a61b1b}
.badge.SUCCEEDED,.badge.ACCEPTED{background:#dff5e3;color:#1c6b32}
.badge.RUNNING,.badge.SENDING{background:#e0ecff;color:#1f4fa0}
.badge.PENDING,.badge.SCHEDULED{background:#fff3d6;color:#875a00}
.muted{color:#66727f;font-size:.88rem}
.error .message,.form-error{color:#a61b1b;font-weight:600}
.flash{background:#e7f6ec;border:1px solid #b6e0c2;border-radius:8px;padding:.6rem .8rem;margin-bottom:1rem}
form.inline{display:inline}
form.filters{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end}
label{display:block;font-size:.85rem;color:#52606d}
input,select,textarea{font:inherit;padding:.35rem .5rem;border:1px solid #b8c3cf;border-radius:6px;background:#fff;max-width:100%}
textarea{width:100%;min-height:5rem;font-family:ui-monospace,monospace}
.field{margin-bottom:.7rem}
.field.bad input,.field.bad textarea,.field.bad select{border-color:#c62828;background:#fff6f6}
button,.button{font:inherit;padding:.4rem .8rem;border-radius:6px;border:1px solid #2c557d;background:#2c557d;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary,.button.secondary{background:#fff;color:#2c557d}
button.danger{background:#b3261e;border-color:#b3261e}
pre{background:#f6f8fa;border:1px solid #e3e8ee;border-radius:6px;padding:.6rem;overflow-x:auto;font-size:.85rem;white-space:pre-wrap;word-break:break-word}
.chart{min-height:220px}
.ranges a{margin-right:.5rem}
td.actions{display:flex;flex-wrap:wrap;gap:.3rem;min-width:9rem}
td.actions button{padding:.25rem .5rem;font-size:.85rem}
.ranges a.active{font-weight:700}
.login{max-width:380px;margin:4rem auto}
@media (max-width:700px){main{padding:.5rem}th,td{padding:.3rem}}
"#;

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (Msg::ConsoleName.text(lang)) }
            link rel="stylesheet" href="/console/assets/uPlot.min.css";
            style { (PreEscaped(STYLE)) }
            script src="/console/assets/htmx.min.js" {}
        }
    }
}

/// The language switch: the other language's link to this page.
fn lang_switch(lang: Lang, here: &str) -> Markup {
    let other = lang.other();
    let sep = if here.contains('?') { '&' } else { '?' };
    html! {
        a.lang href={ (here) (sep) "lang=" (other.code()) } hreflang=(other.code()) { (Msg::OtherLanguage.text(lang)) }
    }
}

/// A signed-in page: navigation, the body, and htmx sending the CSRF token on its requests.
pub fn page(c: &Chrome, title: &str, body: Markup) -> Markup {
    let l = c.lang;
    let tabs: Vec<(Tab, &str, Msg)> = if c.is_admin {
        vec![
            (Tab::Summary, "/console/resumen", Msg::TabSummary),
            (Tab::Tasks, "/console/tareas", Msg::TabTasks),
            (Tab::Schedules, "/console/programacion", Msg::TabSchedules),
            (Tab::Receipts, "/console/comprobantes", Msg::TabReceipts),
        ]
    } else {
        vec![(Tab::Receipts, "/console/comprobantes", Msg::TabReceipts)]
    };
    let hx_headers = serde_json::json!({ "X-CSRF-Token": c.csrf }).to_string();
    html! {
        (DOCTYPE)
        html lang=(l.code()) {
            (head(l, title))
            body hx-headers=(hx_headers) {
                header.top {
                    span.brand { "Faena" }
                    nav {
                        @for (tab, href, msg) in &tabs {
                            a href=(href) class=[(c.tab == *tab).then_some("active")] { (msg.text(l)) }
                        }
                    }
                    div.who {
                        span #who { (c.username) }
                        (lang_switch(l, &c.here))
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(c.csrf);
                            button #logout type="submit" { (Msg::SignOut.text(l)) }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title))
            body { main { (body) } }
        }
    }
}

/// An instant in the business time zone, to the second with the zone's abbreviation.
pub fn time(t: Option<DateTime<Utc>>, tz: chrono_tz::Tz) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| {
            t.with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        },
    )
}

/// A state word as a coloured badge.
pub fn badge(state: &str) -> Markup {
    html! { span class={ "badge " (state) } data-state=(state) { (state) } }
}

/// Pretty JSON for a `<pre>`.
pub fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A confirmation step: the same POST again with `confirmado=si`, or back.
pub fn confirm(
    lang: Lang,
    csrf: &str,
    action: &str,
    question: &str,
    hidden: &[(&str, &str)],
    back: &str,
) -> Markup {
    html! {
        section.card #confirm {
            p { strong { (question) } }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="confirmado" value="si";
                @for (k, v) in hidden { input type="hidden" name=(k) value=(v); }
                button.danger #confirm-yes type="submit" { (Msg::ConfirmYes.text(lang)) }
                " "
                a.button.secondary href=(back) { (Msg::ConfirmNo.text(lang)) }
            }
        }
    }
}

/// An HTML answer that is never cached.
pub fn html_response(status: actix_web::http::StatusCode, m: Markup) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(m.into_string())
}

/// 303 to `to` (after a form).
pub fn see_other(to: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to.to_owned()))
        .finish()
}
