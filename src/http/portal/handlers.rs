//! The JSON endpoints.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::Problem;
use super::{OwnerResolver, Portal, PortalUser, Shared, csrf};
use crate::format::KeyId;
use crate::keyring::{
    AuditEvent, IssueRequest, IssuedKey, KeyUpdate, KeyringError, SelfServiceAction,
};
use crate::ratelimit::RateLimiter;
use crate::record::{KeyRecord, KeyStatus};
use crate::scope::Scope;
use crate::store::{KeyStore, MAX_PAGE_SIZE, PageRequest};

/// Keys listed per page.
const PAGE: usize = 50;

/// The user and, for state-changing requests, the CSRF checks (before the resolver runs,
/// so a forged request costs no session lookup).
pub(super) struct User(PortalUser);

impl<S: KeyStore, L: RateLimiter, R: OwnerResolver> FromRequestParts<Shared<S, L, R>> for User {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared<S, L, R>,
    ) -> Result<Self, Self::Rejection> {
        if parts.method != http::Method::GET {
            csrf::check(parts)?;
        }
        match state.resolver.resolve(parts).await {
            Some(user) => Ok(Self(user)),
            None => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "log in first",
            )),
        }
    }
}

/// A key's status as the page shows it.
fn status(r: &KeyRecord, now: DateTime<Utc>) -> &'static str {
    match r.status {
        KeyStatus::Revoked => "revoked",
        KeyStatus::Disabled => "disabled",
        _ if r.attributes.expires_at.is_some_and(|at| at <= now) => "expired",
        _ if r.successor.is_some() => "rolled",
        _ => "active",
    }
}

/// What a listing shows of a key: never its hash.
fn view(r: &KeyRecord, now: DateTime<Utc>) -> Value {
    json!({
        "id": r.id,
        "name": r.attributes.name,
        "description": r.attributes.description,
        "type": r.prefix,
        "hint": r.hint,
        "scopes": r.attributes.scopes,
        "created_at": r.created_at,
        "expires_at": r.attributes.expires_at,
        "last_used_at": r.last_used_at,
        "status": status(r, now),
    })
}

/// 201 with the key's view and, this once, its plaintext.
fn with_secret(issued: &IssuedKey, now: DateTime<Utc>, extra: Option<(&str, Value)>) -> Response {
    let mut answer = view(&issued.record, now);
    answer["key"] = issued.key.expose_secret().into();
    if let Some((name, value)) = extra {
        answer[name] = value;
    }
    (
        StatusCode::CREATED,
        [(http::header::CACHE_CONTROL, "no-store")],
        Json(answer),
    )
        .into_response()
}

/// An optional JSON body: none at all (no content type) reads as the defaults.
fn optional_body<T: Default>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    match body {
        Ok(Json(body)) => Ok(body),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}

impl<S: KeyStore, L: RateLimiter, R: OwnerResolver> Portal<S, L, R> {
    /// The key `id` if `user` owns it; another owner's key reads exactly like no key.
    async fn owned(&self, user: &PortalUser, id: &str) -> Result<KeyRecord, Problem> {
        let id = KeyId::new(id).map_err(|_| Problem::not_found())?;
        match self.keyring.get(&id).await {
            Ok(record) if record.owner == user.owner => Ok(record),
            Ok(_) | Err(KeyringError::NotFound) => Err(Problem::not_found()),
            Err(e) => Err(e.into()),
        }
    }

    fn audit(
        &self,
        user: &PortalUser,
        action: SelfServiceAction,
        id: &KeyId,
        successor: Option<&KeyId>,
    ) {
        self.keyring.record_event(AuditEvent::SelfService {
            actor: user.actor.clone(),
            owner: user.owner.clone(),
            action,
            id: id.clone(),
            successor: successor.cloned(),
            at: self.keyring.now(),
        });
    }

    /// The owner's keys that still work or may again (active, disabled, or rolled and in
    /// their grace period): what [`Allowance::max_keys`](super::Allowance::max_keys)
    /// bounds. Counted until `stop_at`; also answers whether some key names `successor` as
    /// its successor and is still in its grace period.
    async fn held_keys(
        &self,
        owner: &str,
        stop_at: usize,
        successor: Option<&KeyId>,
    ) -> Result<(usize, bool), Problem> {
        let now = self.keyring.now();
        let mut count = 0;
        let mut predecessor_in_grace = false;
        let mut page = PageRequest::new(MAX_PAGE_SIZE);
        loop {
            let got = self.keyring.list_by_owner(owner, &page).await?;
            for r in &got.items {
                let held = matches!(status(r, now), "active" | "disabled" | "rolled");
                count += usize::from(held);
                if held && successor.is_some() && r.successor.as_ref() == successor {
                    predecessor_in_grace = true;
                }
            }
            match got.next_after {
                // Stop counting early only when the predecessor question is settled.
                Some(after)
                    if count < stop_at || (successor.is_some() && !predecessor_in_grace) =>
                {
                    page = PageRequest::new(MAX_PAGE_SIZE).after(after);
                }
                _ => return Ok((count, predecessor_in_grace)),
            }
        }
    }
}

/// Whether `allowance` covers everything `record` grants: a roll hands out a new plaintext
/// with the old key's type and scopes, so it must not mint what the user could not create
/// (a key an operator issued to the owner, or one made before the allowance narrowed).
fn allowance_covers(
    allowance: &super::Allowance,
    default_type: &str,
    record: &KeyRecord,
    now: DateTime<Utc>,
) -> Result<(), Problem> {
    // The successor keeps the old key's expiry: it must be one the user could give.
    if let Some(max) = allowance.max_lifetime {
        let latest = now
            .checked_add_signed(max)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if record.attributes.expires_at.is_none_or(|at| at > latest) {
            return Err(Problem::not_allowed(
                "this key lives longer than a key you may create: create a new key instead",
            ));
        }
    }
    if !allowance
        .types(default_type)
        .contains(&record.prefix.as_str())
    {
        return Err(Problem::not_allowed(format!(
            "you may not hold keys of type {:?}",
            record.prefix.as_str()
        )));
    }
    if !record.attributes.roles.is_empty() {
        return Err(Problem::not_allowed(
            "this key has roles, which you may not grant",
        ));
    }
    for scope in &record.attributes.scopes {
        let covered = allowance.scopes.iter().any(|pattern| pattern.covers(scope));
        if !covered {
            return Err(Problem::not_allowed(format!("you may not grant {scope}")));
        }
    }
    Ok(())
}

pub(super) async fn types<S: KeyStore, L: RateLimiter, R: OwnerResolver>(
    State(portal): State<Shared<S, L, R>>,
    User(user): User,
) -> Json<Value> {
    let default_type = portal.keyring.key_types().default_type().name().to_string();
    let allowance = &user.allowance;
    Json(json!({
        "types": allowance.types(&default_type),
        "scopes": allowance.scopes,
        "max_lifetime_secs": allowance.max_lifetime.map(|d| d.num_seconds()),
        "max_keys": allowance.max_keys,
        "max_grace_secs": allowance.max_grace.num_seconds(),
    }))
}

#[derive(Deserialize)]
pub(super) struct After {
    after: Option<String>,
}

pub(super) async fn list<S: KeyStore, L: RateLimiter, R: OwnerResolver>(
    State(portal): State<Shared<S, L, R>>,
    User(user): User,
    Query(after): Query<After>,
) -> Result<Json<Value>, Problem> {
    let mut page = PageRequest::new(PAGE);
    if let Some(after) = after.after {
        let id = KeyId::new(&after).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "after must be a key id",
            )
        })?;
        page = page.after(id);
    }
    let got = portal.keyring.list_by_owner(&user.owner, &page).await?;
    let now = portal.keyring.now();
    Ok(Json(json!({
        "keys": got.items.iter().map(|r| view(r, now)).collect::<Vec<_>>(),
        "next_after": got.next_after,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    name: String,
    #[serde(rename = "type")]
    key_type: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_in_secs: Option<i64>,
}

pub(super) async fn create<S: KeyStore, L: RateLimiter, R: OwnerResolver>(
    State(portal): State<Shared<S, L, R>>,
    User(user): User,
    request: Result<Json<Create>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(request) = request?;
    let allowance = &user.allowance;
    let default_type = portal.keyring.key_types().default_type().name().to_string();
    let allowed_types = allowance.types(&default_type);
    let key_type = request
        .key_type
        .unwrap_or_else(|| allowed_types[0].to_owned());
    if !allowed_types.contains(&key_type.as_str()) {
        return Err(Problem::not_allowed(format!(
            "you may not create keys of type {key_type:?}"
        )));
    }
    for requested in &request.scopes {
        let scope = Scope::new(requested)
            .map_err(|_| Problem::not_allowed(format!("{requested:?} is not a valid scope")))?;
        if !allowance
            .scopes
            .iter()
            .any(|pattern| pattern.covers(&scope))
        {
            return Err(Problem::not_allowed(format!("you may not grant {scope}")));
        }
    }
    let lifetime = match request.expires_in_secs {
        Some(secs) if secs <= 0 => {
            return Err(Problem::not_allowed("expires_in_secs must be positive"));
        }
        Some(secs) => match TimeDelta::try_seconds(secs) {
            Some(d) if allowance.max_lifetime.is_none_or(|max| d <= max) => Some(d),
            _ => {
                return Err(Problem::not_allowed(
                    "the key would live longer than you may let it",
                ));
            }
        },
        None => allowance.max_lifetime,
    };

    // Count and issue under the owner's lock, so concurrent creates cannot overshoot.
    let _one_at_a_time = portal.create_lock(&user.owner).lock().await;
    if portal
        .held_keys(&user.owner, allowance.max_keys, None)
        .await?
        .0
        >= allowance.max_keys
    {
        return Err(Problem::not_allowed(format!(
            "you may hold at most {} keys: revoke one first",
            allowance.max_keys
        )));
    }
    let mut issue = IssueRequest::new(user.owner.clone(), request.name)
        .key_type(key_type)
        .scopes(request.scopes);
    if let Some(lifetime) = lifetime {
        issue = issue.expires_in(lifetime);
    }
    let issued = portal
        .keyring
        .acting_as(user.actor.as_str())
        .issue(issue)
        .await?;
    portal.audit(&user, SelfServiceAction::Created, &issued.record.id, None);
    Ok(with_secret(&issued, portal.keyring.now(), None))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Roll {
    grace_secs: Option<i64>,
}

pub(super) async fn roll<S: KeyStore, L: RateLimiter, R: OwnerResolver>(
    State(portal): State<Shared<S, L, R>>,
    User(user): User,
    Path(id): Path<String>,
    request: Result<Json<Roll>, JsonRejection>,
) -> Result<Response, Problem> {
    // Ownership first: for another owner's id, nothing about the body is revealed either.
    let old = portal.owned(&user, &id).await?;
    let request = optional_body(request)?;
    let now = portal.keyring.now();
    if status(&old, now) == "expired" {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "invalid_state",
            "the key has expired: create a new one",
        ));
    }
    let default_type = portal.keyring.key_types().default_type().name().to_string();
    allowance_covers(&user.allowance, &default_type, &old, now)?;
    // Under the owner's lock, like creates: a roll adds a working key for the grace period.
    let _one_at_a_time = portal.create_lock(&user.owner).lock().await;
    let (_, predecessor_in_grace) = portal.held_keys(&user.owner, 0, Some(&old.id)).await?;
    if predecessor_in_grace {
        // Else chained rolls (A -> A' -> A'' ...) would hold any number of working keys.
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "invalid_state",
            "the key this one replaced is still in its grace period: revoke it, or wait",
        ));
    }
    let max_grace = user.allowance.max_grace;
    let grace = match request.grace_secs {
        Some(secs) if secs < 0 => {
            return Err(Problem::not_allowed("grace_secs must not be negative"));
        }
        Some(secs) => TimeDelta::try_seconds(secs)
            .filter(|grace| *grace <= max_grace)
            .ok_or_else(|| Problem::not_allowed("the grace period is longer than you may give"))?,
        // The keyring's default, within the allowance.
        None => portal.keyring.rotation_grace().min(max_grace),
    };
    let (issued, confirmed) = match portal
        .keyring
        .acting_as(user.actor.as_str())
        .rotate(&old.id, Some(grace))
        .await
    {
        Ok(issued) => (Arc::new(issued), true),
        Err(KeyringError::RotationUnconfirmed(issued)) => {
            // The store did not say whether the old key was linked; ask once more rather
            // than hand out a key whose rotation is about to be undone.
            match portal
                .keyring
                .acting_as(user.actor.as_str())
                .confirm_rotation(&old.id, &issued)
                .await
            {
                Ok(true) => (issued, true),
                Ok(false) => return Err(KeyringError::Contention.into()),
                // Still unknown. The new key works either way; only whether the old one
                // now expires is unknown. Hand the key out (it is lost otherwise) and say so.
                Err(_) => (issued, false),
            }
        }
        Err(e) => return Err(e.into()),
    };
    portal.audit(
        &user,
        SelfServiceAction::Rolled,
        &old.id,
        Some(&issued.record.id),
    );
    Ok(with_secret(
        &issued,
        portal.keyring.now(),
        Some(("old_key_expires", confirmed.into())),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Revoke {
    reason: Option<String>,
}

pub(super) async fn revoke<S: KeyStore, L: RateLimiter, R: OwnerResolver>(
    State(portal): State<Shared<S, L, R>>,
    User(user): User,
    Path(id): Path<String>,
    request: Result<Json<Revoke>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let key = portal.owned(&user, &id).await?;
    let request = optional_body(request)?;
    let reason = request.reason.unwrap_or_else(|| {
        // The reason is bounded (1 KiB); an actor name is the host's and may be long.
        let actor: String = user.actor.chars().take(200).collect();
        format!("revoked by {actor} through self-service")
    });
    portal
        .keyring
        .acting_as(user.actor.as_str())
        .revoke(&key.id, &reason)
        .await?;
    portal.audit(&user, SelfServiceAction::Revoked, &key.id, None);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Edit {
    name: Option<String>,
    description: Option<String>,
}

pub(super) async fn edit<S: KeyStore, L: RateLimiter, R: OwnerResolver>(
    State(portal): State<Shared<S, L, R>>,
    User(user): User,
    Path(id): Path<String>,
    request: Result<Json<Edit>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let key = portal.owned(&user, &id).await?;
    let Json(request) = request?;
    if key.status == KeyStatus::Revoked {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "invalid_state",
            "the key is revoked",
        ));
    }
    if request.name.is_none() && request.description.is_none() {
        // Nothing to change: no write, no event.
        return Ok(Json(view(&key, portal.keyring.now())));
    }
    let mut change = KeyUpdate::new();
    if let Some(name) = request.name {
        change = change.name(name);
    }
    if let Some(description) = request.description {
        change = change.description(Some(description));
    }
    let record = portal
        .keyring
        .acting_as(user.actor.as_str())
        .update(&key.id, change)
        .await?;
    portal.audit(&user, SelfServiceAction::Edited, &key.id, None);
    Ok(Json(view(&record, portal.keyring.now())))
}
