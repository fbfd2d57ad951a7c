//! The REST API's OpenAPI 3.1 document, served at `/api/openapi.json`, made from the
//! handlers' own annotations so it cannot drift from the routes (a test compares them).

use crate::api::{
    accounts, agents, applications, baseline, blocklists, computers, events, exports, forwarding, policies, requests,
    ringfences,
};
use crate::error::ErrorBody;
use portcullis_policy_file::document::{
    ApplicationDoc, BlocklistDoc, ChildFenceDoc, ComputerDoc, DomainRuleDoc, FileFenceDoc, FileRuleDoc, GroupDoc,
    NetFenceDoc, NetRuleDoc, OrganizationDoc, PolicyDoc, RingfenceDoc, RuleDoc, SignerDoc,
};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis management API",
        description = "Policies, applications, blocklists, computers and events of one organization, and the agent sync API. \
Authenticate with an API token (`Authorization: Bearer pct_…`, documented as the security scheme). \
The console's session cookie from `POST /api/session` works too, with its `csrf_token` sent back as `X-CSRF-Token` \
on every change. Agents use their own credential."
    ),
    paths(
        accounts::login, accounts::logout, accounts::me, accounts::change_own_password, accounts::create_token,
        accounts::tokens, accounts::revoke_token, accounts::create_user, accounts::users, accounts::update_user,
        accounts::delete_user, accounts::reset_password, accounts::sessions, accounts::end_all_sessions,
        accounts::end_session, accounts::audit,
        computers::settings, computers::set_settings, computers::groups, computers::create_group,
        computers::update_group, computers::delete_group, computers::enrollment_token,
        computers::revoke_enrollment_token, computers::computers, computers::computer_packages, computers::bypass_code, computers::update_computer,
        computers::delete_computer, computers::pending, computers::accept_pending, computers::reject_pending,
        computers::bundle_key, computers::rotate_bundle_key,
        applications::applications, applications::create_application, applications::update_application,
        applications::delete_application,
        ringfences::ringfences, ringfences::ringfence, ringfences::create_ringfence, ringfences::update_ringfence,
        ringfences::delete_ringfence,
        policies::policies, policies::create_policy, policies::update_policy, policies::delete_policy,
        policies::move_policy, policies::unused_policies, policies::remove_policies, policies::document,
        blocklists::blocklists, blocklists::create_blocklist, blocklists::blocklist, blocklists::extract,
        blocklists::add_hashes, blocklists::set_blocklist_rules, blocklists::approve, blocklists::revoke,
        blocklists::delete_blocklist,
        events::preview, events::events, events::event, events::policy_from_event,
        forwarding::forwarders, forwarding::create_forwarder, forwarding::update_forwarder,
        forwarding::delete_forwarder, forwarding::retention, forwarding::set_retention,
        baseline::proposal, baseline::accept, requests::requests, requests::decide, exports::export, exports::file,
        agents::enroll, agents::poll, agents::events, agents::packages, agents::bypass_key, agents::requests,
        agents::captures,
    ),
    components(schemas(
        ErrorBody, OrganizationDoc, GroupDoc, ComputerDoc, ApplicationDoc, PolicyDoc, RuleDoc, SignerDoc, BlocklistDoc,
        RingfenceDoc, FileFenceDoc, FileRuleDoc, NetFenceDoc, NetRuleDoc, DomainRuleDoc, ChildFenceDoc,
    )),
    modifiers(&Security),
    tags(
        (name = "accounts", description = "Sessions, tokens, users, the audit log"),
        (name = "model", description = "Settings, groups, computers, applications, ringfence profiles, the ordered policy list"),
        (name = "blocklists", description = "Blocklist packages: paste → extract → preview → bulk add, metadata rules, approvals"),
        (name = "events", description = "Events from agents, the \"what would happen\" preview, policies made from events, forwarding to a SIEM, retention"),
        (name = "hygiene", description = "Unused policies"),
        (name = "agents", description = "Enrollment, the signed policy bundle (long-poll), event batches"),
    )
)]
/// The document's definition: every operation, schema and security scheme.
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("agent", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// `GET /api/openapi.json`.
pub(crate) fn router() -> axum::Router<crate::AppState> {
    axum::Router::new().route("/api/openapi.json", axum::routing::get(openapi_json))
}

async fn openapi_json() -> impl axum::response::IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOC.get_or_init(document).clone();
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
}

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes")
}
