//! The route rules of DESIGN.md §2, one row per rule, with the explanation each must give.

use dialnexa_core::EntryPoint::{self, *};
use dialnexa_core::route::{AgentInfo, NumberInfo, RouteRequest, Snapshot, resolve};
use dialnexa_core::{AgentId, PhoneNumber};

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

struct World {
    snap: Snapshot,
    support: AgentId,
    sales: AgentId,
    drafty: AgentId,
}

fn world() -> World {
    let support = AgentId::generate();
    let sales = AgentId::generate();
    let drafty = AgentId::generate();
    let ghost = AgentId::generate();
    let agents = vec![
        AgentInfo {
            agent_id: support.clone(),
            name: "Support line".into(),
            published: vec![(1, "sha256:s1".into()), (3, "sha256:s3".into()), (2, "sha256:s2".into())],
        },
        AgentInfo { agent_id: sales.clone(), name: "Sales".into(), published: vec![(1, "sha256:a1".into())] },
        AgentInfo { agent_id: drafty.clone(), name: "Drafty".into(), published: vec![] },
    ];
    let num = |p: &str, active, ib: Option<(&AgentId, Option<u32>)>, ob: Option<(&AgentId, Option<u32>)>| NumberInfo {
        phone_number: n(p),
        active,
        inbound_agent_id: ib.map(|(a, _)| a.clone()),
        inbound_agent_version: ib.and_then(|(_, v)| v),
        outbound_agent_id: ob.map(|(a, _)| a.clone()),
        outbound_agent_version: ob.and_then(|(_, v)| v),
    };
    let numbers = vec![
        num("+15550100000", true, Some((&support, Some(3))), Some((&sales, Some(1)))),
        num("+15550100001", true, Some((&support, None)), None),
        num("+15550100002", false, Some((&support, Some(1))), Some((&sales, None))),
        num("+15550100003", true, None, Some((&support, Some(2)))),
        num("+15550100004", true, Some((&support, Some(9))), Some((&drafty, None))),
        num("+15550100005", true, Some((&ghost, None)), None),
    ];
    World { snap: Snapshot { numbers, agents }, support, sales, drafty }
}

struct Row {
    name: &'static str,
    entry: EntryPoint,
    number: Option<&'static str>,
    agent: Option<&'static str>,
    version: Option<u32>,
    batch: Option<&'static str>,
    workflow: Option<(&'static str, &'static str)>,
    /// Ok((agent name, version, explanation)) or Err(code, message fragment)
    expect: Result<(&'static str, u32, &'static str), (&'static str, &'static str)>,
}

const fn row(name: &'static str, entry: EntryPoint) -> Row {
    Row { name, entry, number: None, agent: None, version: None, batch: None, workflow: None, expect: Err(("", "")) }
}

#[test]
fn route_rules_table() {
    let w = world();
    let agent_ref = |s: &str| match s {
        "support" => w.support.clone(),
        "sales" => w.sales.clone(),
        "drafty" => w.drafty.clone(),
        _ => AgentId::generate(),
    };
    let rows = vec![
        Row {
            number: Some("+15550100000"),
            expect: Ok(("Support line", 3, "+15550100000 is assigned inbound agent 'Support line' version 3")),
            ..row("inbound, pinned version", Inbound)
        },
        Row {
            number: Some("+15550100001"),
            expect: Ok((
                "Support line",
                3,
                "+15550100001 is assigned inbound agent 'Support line' version 3 (no version pinned, so its latest published version)",
            )),
            ..row("inbound, latest published", Inbound)
        },
        Row {
            number: Some("+15550100003"),
            expect: Err(("no_inbound_agent", "+15550100003 has no inbound agent, so inbound calls to it are refused")),
            ..row("inbound, no inbound agent", Inbound)
        },
        Row { number: Some("+15550100002"), expect: Err(("phone_number_inactive", "+15550100002 is inactive")), ..row("inbound, inactive number", Inbound) },
        Row {
            number: Some("+15550109999"),
            expect: Err(("phone_number_not_found", "+15550109999 is not a DialNexa phone number")),
            ..row("inbound, unknown number", Inbound)
        },
        Row {
            number: Some("+15550100004"),
            expect: Err(("agent_version_not_published", "agent 'Support line' has no published version 9")),
            ..row("inbound, pinned version unpublished", Inbound)
        },
        Row { number: Some("+15550100005"), expect: Err(("agent_not_found", "does not exist")), ..row("inbound, agent deleted", Inbound) },
        Row { expect: Err(("validation_failed", "inbound calls need the dialled phone_number")), ..row("inbound, no number given", Inbound) },
        Row {
            number: Some("+15550100000"),
            expect: Ok(("Sales", 1, "+15550100000 is assigned outbound agent 'Sales' version 1")),
            ..row("outbound, number's outbound agent", Outbound)
        },
        Row {
            number: Some("+15550100000"),
            agent: Some("support"),
            version: Some(2),
            expect: Ok((
                "Support line",
                2,
                "Outbound call from +15550100000 uses the requested agent 'Support line' version 2 instead of the number's outbound agent 'Sales'",
            )),
            ..row("outbound, explicit override", Outbound)
        },
        Row {
            number: Some("+15550100001"),
            agent: Some("sales"),
            expect: Ok((
                "Sales",
                1,
                "Outbound call from +15550100001 uses the requested agent 'Sales' version 1 (no version pinned, so its latest published version); the number has no outbound agent of its own",
            )),
            ..row("outbound, override on a number without outbound agent", Outbound)
        },
        Row {
            number: Some("+15550100001"),
            expect: Err(("no_outbound_agent", "+15550100001 has no outbound agent, so an outbound call cannot call from it")),
            ..row("outbound, no outbound agent", Outbound)
        },
        Row { number: Some("+15550100002"), expect: Err(("phone_number_inactive", "inactive")), ..row("outbound, inactive", Outbound) },
        Row {
            number: Some("+15550100004"),
            expect: Err(("agent_version_not_published", "agent 'Drafty' has no published version yet")),
            ..row("outbound, agent never published", Outbound)
        },
        Row {
            number: Some("+15550100000"),
            agent: Some("support"),
            version: Some(7),
            expect: Err(("agent_version_not_published", "no published version 7")),
            ..row("outbound, override version unpublished", Outbound)
        },
        Row {
            number: Some("+15550100000"),
            agent: Some("nobody"),
            expect: Err(("agent_not_found", "does not exist")),
            ..row("outbound, override agent unknown", Outbound)
        },
        Row {
            number: Some("+15550100003"),
            batch: Some("batch_1"),
            expect: Ok(("Support line", 2, "Batch batch_1 dials from +15550100003, whose outbound agent is 'Support line' version 2")),
            ..row("batch, selected number has outbound version", Batch)
        },
        Row {
            number: Some("+15550100001"),
            batch: Some("batch_1"),
            expect: Err(("no_outbound_agent", "so a batch cannot call from it")),
            ..row("batch, number without outbound agent", Batch)
        },
        Row {
            number: Some("+15550100003"),
            agent: Some("sales"),
            expect: Err(("validation_failed", "batch calls use the selected number's outbound agent")),
            ..row("batch, override refused", Batch)
        },
        Row {
            number: Some("+15550100003"),
            workflow: Some(("wf_7", "call_lead")),
            expect: Ok((
                "Support line",
                2,
                "Voice Call node 'call_lead' of workflow wf_7 calls from +15550100003, whose outbound agent is 'Support line' version 2",
            )),
            ..row("workflow node, active number with outbound agent", Workflow)
        },
        Row {
            number: Some("+15550100002"),
            workflow: Some(("wf_7", "call_lead")),
            expect: Err(("phone_number_inactive", "inactive")),
            ..row("workflow node, inactive number", Workflow)
        },
        Row {
            number: Some("+15550100001"),
            workflow: Some(("wf_7", "call_lead")),
            expect: Err(("no_outbound_agent", "so a workflow Voice Call node cannot call from it")),
            ..row("workflow node, no outbound agent", Workflow)
        },
        Row {
            agent: Some("support"),
            expect: Ok(("Support line", 3, "Web call requested agent 'Support line' version 3 (no version pinned, so its latest published version)")),
            ..row("web, latest published", Web)
        },
        Row {
            agent: Some("support"),
            version: Some(1),
            expect: Ok(("Support line", 1, "Web call requested agent 'Support line' version 1")),
            ..row("web, named version", Web)
        },
        Row {
            agent: Some("support"),
            version: Some(2),
            expect: Ok(("Support line", 2, "Test call requested agent 'Support line' version 2")),
            ..row("test, named version", Test)
        },
        Row {
            agent: Some("drafty"),
            expect: Err(("agent_version_not_published", "agent 'Drafty' has no published version yet")),
            ..row("test, nothing published", Test)
        },
        Row {
            agent: Some("support"),
            version: Some(4),
            expect: Err(("agent_version_not_published", "no published version 4")),
            ..row("test, unknown version", Test)
        },
        Row { agent: Some("nobody"), expect: Err(("agent_not_found", "does not exist")), ..row("test, unknown agent", Test) },
        Row { expect: Err(("validation_failed", "test calls need agent_id")), ..row("test, no agent", Test) },
    ];
    for r in rows {
        let req = RouteRequest {
            entry_point: Some(r.entry),
            phone_number: r.number.map(n),
            agent_id: r.agent.map(agent_ref),
            agent_version: r.version,
            batch_id: r.batch.map(str::to_owned),
            workflow_id: r.workflow.map(|(w, _)| w.to_owned()),
            node_id: r.workflow.map(|(_, n)| n.to_owned()),
        };
        let got = resolve(&req, &w.snap);
        match (r.expect, got) {
            (Ok((name, version, explanation)), Ok(route)) => {
                assert_eq!(route.agent_name, name, "{}", r.name);
                assert_eq!(route.agent_version, version, "{}", r.name);
                assert_eq!(route.explanation, explanation, "{}", r.name);
                assert_eq!(route.entry_point, r.entry, "{}", r.name);
                assert!(route.config_hash.starts_with("sha256:"), "{}", r.name);
                assert_eq!(route.phone_number.as_ref().map(|p| p.as_str()), r.number, "{}", r.name);
            }
            (Err((code, fragment)), Err(e)) => {
                assert_eq!(e.code(), code, "{}: {e}", r.name);
                assert!(e.to_string().contains(fragment), "{}: '{e}' lacks '{fragment}'", r.name);
            }
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", r.name),
        }
    }
}

#[test]
fn route_carries_batch_and_workflow_ids_only_for_their_entry_points() {
    let w = world();
    let req = RouteRequest {
        entry_point: Some(Workflow),
        phone_number: Some(n("+15550100003")),
        workflow_id: Some("wf_1".into()),
        node_id: Some("n1".into()),
        batch_id: Some("b".into()),
        ..Default::default()
    };
    let route = resolve(&req, &w.snap).unwrap();
    assert_eq!(route.workflow_id.as_deref(), Some("wf_1"));
    assert_eq!(route.node_id.as_deref(), Some("n1"));
    assert_eq!(route.batch_id, None);
}
