//! The REST API's OpenAPI 3.1 document, served at `/api/openapi.json`, made from the
//! handlers' own annotations so it cannot drift from the routes (a test compares them).

use crate::error::ErrorBody;
use crate::{admin_api, agent_api, model_api, routes};
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
        routes::login, routes::logout, routes::me, routes::create_token, routes::create_user, routes::audit,
        model_api::settings, model_api::set_settings, model_api::groups, model_api::create_group,
        model_api::update_group, model_api::delete_group, admin_api::enrollment_token, admin_api::revoke_enrollment_token,
        model_api::computers,
        model_api::update_computer, model_api::delete_computer, model_api::applications,
        model_api::create_application, model_api::update_application, model_api::delete_application,
        model_api::ringfences, model_api::ringfence, model_api::create_ringfence, model_api::update_ringfence,
        model_api::delete_ringfence,
        model_api::policies, model_api::create_policy, model_api::update_policy, model_api::delete_policy,
        model_api::move_policy, model_api::unused_policies, model_api::remove_policies, model_api::blocklists,
        model_api::create_blocklist, model_api::blocklist, model_api::extract, model_api::add_hashes,
        model_api::set_blocklist_rules, model_api::approve, model_api::revoke, model_api::delete_blocklist,
        model_api::preview, model_api::events, model_api::event, model_api::policy_from_event, model_api::document,
        agent_api::enroll, agent_api::poll, agent_api::events, admin_api::users, admin_api::update_user,
        admin_api::delete_user, admin_api::reset_password, admin_api::change_own_password, admin_api::tokens,
        admin_api::revoke_token, admin_api::sessions, admin_api::end_all_sessions, admin_api::end_session,
        admin_api::pending, admin_api::accept_pending, admin_api::reject_pending, admin_api::bundle_key,
        admin_api::rotate_bundle_key,
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
        (name = "events", description = "Events from agents, the \"what would happen\" preview, policies made from events"),
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

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes")
}
