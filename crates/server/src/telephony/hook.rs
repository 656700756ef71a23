//! Dynamic routing: a number's optional inbound hook. At each inbound call DialNexa posts the
//! caller's number to it; within `inbound_hook_timeout_ms` it may answer variables for the
//! agent and another published agent version. Late, failing or unusable answers leave the
//! number's own agent in charge; the route explanation says which happened and why.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dialnexa_core::AgentId;
use dialnexa_core::agent::VersionStatus;
use dialnexa_core::route::Route;
use dialnexa_store::PhoneNumberRecord;
use serde_json::{Value, json};

use crate::state::AppState;

/// The largest hook answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the hook decided.
pub(crate) struct Decision {
    pub route: Route,
    pub variables: BTreeMap<String, String>,
}

fn usable_variables(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let Some(m) = v.as_object() else { return Err("variables is not an object".into()) };
    if m.len() > 64 {
        return Err("more than 64 variables".into());
    }
    let mut out = BTreeMap::new();
    for (k, val) in m {
        let name_ok = k.len() <= 64
            && k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(format!("variable name '{}' is not lower-case letters, digits and '_'", k.chars().take(40).collect::<String>()));
        }
        let text = match val {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("variable '{k}' is not a string")),
        };
        if text.chars().count() > 2000 {
            return Err(format!("variable '{k}' is over 2000 characters"));
        }
        out.insert(k.clone(), text);
    }
    Ok(out)
}

/// Ask the hook; the number's own route when there is none or its answer cannot be used.
pub(crate) async fn decide(state: &AppState, number: &PhoneNumberRecord, from: &str, carrier_sid: &str, own: Route) -> Decision {
    let Some(url) = number.inbound_hook_url.clone() else { return Decision { route: own, variables: BTreeMap::new() } };
    let timeout = Duration::from_millis(state.config.inbound_hook_timeout_ms.clamp(100, 10_000));
    let started = Instant::now();
    let body = json!({
        "event": "call_inbound",
        "from_number": from,
        "to_number": number.phone_number.as_str(),
        "carrier_call_sid": carrier_sid,
        "agent_id": own.agent_id.as_str(),
        "agent_version": own.agent_version,
    });
    let asked = async {
        let resp = state
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { "timed out".to_owned() } else { "could not be reached".to_owned() })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {}", status.as_u16()));
        }
        let mut resp = resp;
        let mut bytes = vec![];
        while let Some(chunk) = resp.chunk().await.map_err(|_| "broke off its answer".to_owned())? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!("answered more than {MAX_ANSWER_BYTES} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice::<Value>(&bytes).map_err(|_| "answered something that is not JSON".to_owned())
    };
    let answer = match tokio::time::timeout(timeout, asked).await {
        Ok(r) => r,
        Err(_) => Err(format!("did not answer within {} ms", timeout.as_millis())),
    };
    let took = started.elapsed().as_millis();
    let fallback = |own: Route, why: String| {
        let mut route = own;
        route.explanation = format!("{}; its inbound hook {why}, so the number's own agent answered", route.explanation);
        Decision { route, variables: BTreeMap::new() }
    };
    let answer = match answer {
        Ok(a) if a.is_object() => a,
        Ok(_) => return fallback(own, "answered JSON that is not an object".into()),
        Err(why) => {
            tracing::warn!(phone_number = %number.phone_number, "inbound hook {why}");
            return fallback(own, why);
        }
    };
    let variables = match answer.get("variables") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => match usable_variables(v) {
            Ok(v) => v,
            Err(why) => return fallback(own, format!("answered unusable variables ({why})")),
        },
    };
    let vars_text = if variables.is_empty() { String::new() } else { format!(" with variables {}", variables.keys().cloned().collect::<Vec<_>>().join(", ")) };
    let Some(agent) = answer.get("agent_id").and_then(Value::as_str) else {
        let mut route = own;
        route.explanation = format!(
            "{}; its inbound hook answered in {took} ms{}",
            route.explanation,
            if vars_text.is_empty() { " with no change".to_owned() } else { vars_text }
        );
        return Decision { route, variables };
    };
    let Ok(agent_id) = AgentId::parse(agent) else {
        return fallback(own, format!("named agent {} that does not exist", agent.chars().take(60).collect::<String>()));
    };
    let Ok(record) = state.store.get_agent(&agent_id).await else { return fallback(own, format!("named agent {agent_id} that does not exist")) };
    let version = match answer.get("agent_version").and_then(Value::as_u64) {
        Some(v) => u32::try_from(v).unwrap_or(u32::MAX),
        None => match record.published_versions.iter().max() {
            Some(v) => *v,
            None => return fallback(own, format!("named agent '{}' that has no published version", record.name)),
        },
    };
    let v = match state.store.get_version(&agent_id, version).await {
        Ok(v) if v.status == VersionStatus::Published => v,
        _ => return fallback(own, format!("named version {version} of agent '{}', which is not published", record.name)),
    };
    let explanation = format!(
        "{} has inbound agent '{}' version {}; its inbound hook chose agent '{}' version {version}{vars_text} (answered in {took} ms)",
        number.phone_number, own.agent_name, own.agent_version, record.name
    );
    let route = Route { agent_id, agent_name: record.name, agent_version: version, config_hash: v.config_hash, explanation, ..own };
    Decision { route, variables }
}
