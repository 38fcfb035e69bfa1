use std::path::Path;

use proptest::prelude::*;

use crate::util::{
    BASE, Case, Crucible, JUDGE_SERVER, Scratch, SimServer, check_cases, llama_url, num, query,
    replay_strictly, result, results_without_ids, root, run_json, run_shipped, table_rows,
};

/// A valid plan → code ⇄ review graph behind a router; the graph cases edit it.
const GRAPH_BASE: &str = r#"name: g
models:
  sim: {provider: simulated, distribution: {p_correct: 0.6, delta: 0.3}}
agents:
  planner: {model: sim, prompt: "Plan {{ question }}"}
  coder: {model: sim, prompt: "Code {{ question }}"}
  reviewer: {model: sim, prompt: "Review {{ question }}"}
dataset:
  synthetic: {count: 2}
verifiers:
  oracle: {kind: oracle}
strategies:
  - {kind: self_consistency, agent: planner, n: 1}
graph:
  nodes:
    plan: {agent: planner}
    code: {agent: coder}
    review: {agent: reviewer}
    gate:
      router: {by: contains, options: [APPROVED, REVISE], default: REVISE}
  edges:
    - {from: START, to: plan}
    - {from: plan, to: code}
    - {from: code, to: review}
    - {from: review, to: gate}
    - {from: gate, option: APPROVED, to: END}
    - {from: gate, option: REVISE, to: code, max_visits: 3}
"#;

const GRAPH_CASES: &[Case] = &[
    Case {
        name: "edge to an unknown node",
        edit: ("{from: plan, to: code}", "{from: plan, to: coder}"),
        files: &[],
        at: "s.yaml:23:24",
        message: "unknown node `coder`; did you mean `code`?",
    },
    Case {
        name: "edge from an unknown node",
        edit: ("{from: code, to: review}", "{from: cod, to: review}"),
        files: &[],
        at: "s.yaml:24:14",
        message: "unknown node `cod`",
    },
    Case {
        name: "node with an unknown agent",
        edit: ("review: {agent: reviewer}", "review: {agent: reviwer}"),
        files: &[],
        at: "s.yaml:18:21",
        message: "unknown agent `reviwer`; did you mean `reviewer`?",
    },
    Case {
        name: "node of two kinds",
        edit: (
            "plan: {agent: planner}",
            "plan: {agent: planner, join: vote}",
        ),
        files: &[],
        at: "s.yaml:16:34",
        message: "exactly one of `agent`, `router`, `join` or `chat`",
    },
    Case {
        name: "unreachable node",
        edit: ("    gate:\n", "    lonely: {agent: coder}\n    gate:\n"),
        files: &[],
        at: "s.yaml:19:5",
        message: "node `lonely` cannot be reached from `START`",
    },
    Case {
        name: "no path to END",
        edit: (
            "  edges:\n    - {from: START, to: plan}",
            "    stuck: {agent: coder}\n  edges:\n    - {from: START, to: plan}\n    - {from: START, to: stuck}\n    - {from: stuck, to: stuck, max_visits: 2}",
        ),
        files: &[],
        at: "s.yaml:21:5",
        message: "no path leads from `stuck` to `END`",
    },
    Case {
        name: "cycle without a limit",
        edit: ("to: code, max_visits: 3}", "to: code}"),
        files: &[],
        at: "s.yaml:27:14",
        message: "the cycle gate → code → review → gate has no limit",
    },
    Case {
        name: "self-loop without a limit",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code}\n    - {from: plan, to: plan, when: {contains: AGAIN}}",
        ),
        files: &[],
        at: "s.yaml:24:14",
        message: "the cycle plan → plan has no limit",
    },
    Case {
        name: "router option without an edge",
        edit: (
            "options: [APPROVED, REVISE]",
            "options: [APPROVED, REVISE, ABANDON]",
        ),
        files: &[],
        at: "s.yaml:20:58",
        message: "option `ABANDON` of router `gate` has no edge",
    },
    Case {
        name: "edge naming no router option",
        edit: ("option: REVISE", "option: REVIS"),
        files: &[],
        at: "s.yaml:27:28",
        message: "router `gate` has no option `REVIS` (options: APPROVED, REVISE); did you mean `REVISE`?",
    },
    Case {
        name: "router edge without an option",
        edit: (
            "{from: gate, option: APPROVED, to: END}",
            "{from: gate, to: END}",
        ),
        files: &[],
        at: "s.yaml:26:14",
        message: "an edge from router `gate` needs `option`",
    },
    Case {
        name: "option on an edge from an agent",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code, option: APPROVED}",
        ),
        files: &[],
        at: "s.yaml:23:38",
        message: "`option` is for edges from a router",
    },
    Case {
        name: "router default that is no option",
        edit: ("default: REVISE", "default: RETRY"),
        files: &[],
        at: "s.yaml:20:68",
        message: "unknown option `RETRY`",
    },
    Case {
        name: "json router without a field",
        edit: ("by: contains", "by: json"),
        files: &[],
        at: "s.yaml:20:20",
        message: "`by: json` needs `field`",
    },
    Case {
        name: "regex router with a bad pattern",
        edit: (
            "by: contains, options: [APPROVED, REVISE]",
            "by: regex, options: [APPROVED, REVISE], match: {REVISE: \"(\"}",
        ),
        files: &[],
        at: "s.yaml:20:72",
        message: "invalid regex `(`",
    },
    Case {
        name: "conditional edges without a fallback",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code, when: {contains: GO}}",
        ),
        files: &[],
        at: "s.yaml:16:5",
        message: "every edge from `plan` has `when`",
    },
    Case {
        name: "condition with two tests",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code, when: {contains: GO, regex: go}}\n    - {from: plan, to: END}",
        ),
        files: &[],
        at: "s.yaml:23:36",
        message: "`when` needs exactly one of `contains` or `regex`",
    },
    Case {
        name: "join with one incoming edge",
        edit: (
            "  edges:",
            "    merge: {join: vote}\n  edges:\n    - {from: plan, to: merge}\n    - {from: merge, to: END}",
        ),
        files: &[],
        at: "s.yaml:21:5",
        message: "join `merge` has 1 incoming edge(s)",
    },
    Case {
        name: "join verifier that does not exist",
        edit: (
            "    gate:\n",
            "    merge: {join: verifier, verifier: oracel}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:39",
        message: "unknown verifier `oracel`; did you mean `oracle`?",
    },
    Case {
        name: "node named START",
        edit: (
            "    plan: {agent: planner}",
            "    plan: {agent: planner}\n    START: {agent: coder}",
        ),
        files: &[],
        at: "s.yaml:17:5",
        message: "`START` is implicit in every graph",
    },
    Case {
        name: "edge into START",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: START}\n    - {from: plan, to: code}",
        ),
        files: &[],
        at: "s.yaml:23:24",
        message: "no edge may enter `START`",
    },
    Case {
        name: "zero max_visits",
        edit: ("max_visits: 3", "max_visits: 0"),
        files: &[],
        at: "s.yaml:27:58",
        message: "`max_visits` must be at least 1",
    },
    Case {
        name: "unknown graph key",
        edit: ("  edges:", "  max_turn: 5\n  edges:"),
        files: &[],
        at: "s.yaml:21:3",
        message: "unknown key `max_turn` in `graph` (expected one of: nodes, edges, max_turns); did you mean `max_turns`?",
    },
    Case {
        name: "chat with one participant",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder], until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:18",
        message: "chat `room` needs at least two `participants`",
    },
    Case {
        name: "chat with an unknown participant",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, revewer], until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:41",
        message: "unknown agent `revewer`; did you mean `reviewer`?",
    },
    Case {
        name: "chat that might never end",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], until: {mentions: DONE}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:59",
        message: "chat `room` might never end",
    },
    Case {
        name: "chat with a manager but no manager agent",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], speakers: manager, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:62",
        message: "`speakers: manager` needs `manager`",
    },
    Case {
        name: "chat speaker router option that is not a participant",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], speakers: router, router: {by: contains, options: [coder, reviwer]}, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:110",
        message: "option `reviwer` is not a participant of chat `room`; did you mean `reviewer`?",
    },
    Case {
        name: "chat with router speakers but no router",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], speakers: router, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:62",
        message: "`speakers: router` needs `router`: what picks the next speaker from the last message",
    },
    Case {
        name: "chat router without router speakers",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], router: {by: contains, options: [coder]}, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:60",
        message: "`router` applies to `speakers: router`",
    },
    Case {
        name: "chat ending on an unknown verifier",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], until: {any: [{verifier: oracel}, {max_messages: 3}]}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:59",
        message: "unknown verifier `oracel`; did you mean `oracle`?",
    },
    Case {
        name: "view on a router",
        edit: (
            "router: {by: contains, options: [APPROVED, REVISE], default: REVISE}",
            "router: {by: contains, options: [APPROVED, REVISE], default: REVISE}\n      view: all",
        ),
        files: &[],
        at: "s.yaml:21:13",
        message: "`view` applies to agent and chat nodes",
    },
    Case {
        name: "summary by an unknown agent",
        edit: (
            "plan: {agent: planner}",
            "plan: {agent: planner, view: {summary: writer}}",
        ),
        files: &[],
        at: "s.yaml:16:34",
        message: "unknown agent `writer`",
    },
    Case {
        name: "self-correction over the graph",
        edit: (
            "  - {kind: self_consistency, agent: planner, n: 1}",
            "  - {kind: self_correction, agent: graph, verifier: oracle, n: 2}",
        ),
        files: &[],
        at: "s.yaml:13:12",
        message: "`self_correction` revises one agent's answers; it cannot wrap the graph",
    },
    Case {
        name: "an agent named like the graph",
        edit: (
            "  coder: {model: sim",
            "  graph: {model: sim, prompt: x}\n  coder: {model: sim",
        ),
        files: &[],
        at: "s.yaml:6:3",
        message: "`graph` names the scenario's graph in strategies; rename this agent",
    },
    Case {
        name: "node running the graph pseudo-agent",
        edit: ("plan: {agent: planner}", "plan: {agent: graph}"),
        files: &[],
        at: "s.yaml:16:19",
        message: "unknown agent `graph`",
    },
    Case {
        name: "graph over an agent whose definition failed",
        edit: ("coder: {model: sim", "coder: {model: nosuch"),
        files: &[],
        at: "s.yaml:6:18",
        message: "agent `coder` uses undefined model `nosuch` (defined: sim)",
    },
    Case {
        name: "unknown edge key",
        edit: ("{from: plan, to: code}", "{from: plan, to: code, limit: 2}"),
        files: &[],
        at: "s.yaml:23:30",
        message: "unknown key `limit` (expected one of: from, to, option, when, max_visits)",
    },
];

#[test]
fn malformed_graphs_point_at_the_problem_and_write_nothing() {
    check_cases(GRAPH_BASE, GRAPH_CASES);
}

/// Edits of GRAPH_BASE's simulated agents (`simulate`) that are invalid.
const SIMULATE_CASES: &[Case] = &[
    Case {
        name: "unknown failure code",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: reviewer, failures: {FM-32: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:7:104",
        message: "unknown failure mode `FM-32`; MAST codes are FM-1.1 to FM-3.3; did you mean `FM-3.2`?",
    },
    Case {
        name: "failure mode that cannot be simulated",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-1.1: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "FM-1.1 (disobey task specification) cannot be simulated; simulated agents can act out FM-1.2, FM-1.3, FM-1.5, FM-2.1, FM-2.4, FM-2.5, FM-3.1, FM-3.2",
    },
    Case {
        name: "skipped verification by an agent that does not verify",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-3.2: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "FM-3.2 (no or incomplete verification) needs an agent that verifies: give it `role: reviewer` or `role: judge`",
    },
    Case {
        name: "failure rates adding up to more than one",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-1.2: 0.6, FM-2.4: 0.6}}}",
        ),
        files: &[],
        at: "s.yaml:6:75",
        message: "failure rates add up to 1.2, more than 1: at most one failure is injected per turn",
    },
    Case {
        name: "failure rate below zero",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-1.3: -0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "`FM-1.3` must be a probability in [0, 1], found -0.1",
    },
    Case {
        name: "agreement above one",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {agree: 1.5}}",
        ),
        files: &[],
        at: "s.yaml:6:72",
        message: "`agree` must be a probability in [0, 1], found 1.5",
    },
    Case {
        name: "approve and revise words containing each other",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: reviewer, approve: OK, revise: NOT OK}}",
        ),
        files: &[],
        at: "s.yaml:7:95",
        message: "`approve` and `revise` must not contain each other, or a router could not tell them apart",
    },
    Case {
        name: "blank approve word",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: reviewer, approve: \" \"}}",
        ),
        files: &[],
        at: "s.yaml:7:95",
        message: "`approve` needs a word, e.g. APPROVED",
    },
    Case {
        name: "unknown role",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: critic}}",
        ),
        files: &[],
        at: "s.yaml:7:76",
        message: "unknown value `critic` (expected one of: solver, debater, planner, reviewer, judge)",
    },
    Case {
        name: "misspelled simulate key in an agent the graph uses",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {agre: 0.5}}",
        ),
        files: &[],
        at: "s.yaml:6:65",
        message: "unknown key `agre` (expected one of: role, agree, approve_correct, approve_wrong, approve, revise, failures); did you mean `agree`?",
    },
    Case {
        name: "premature termination by an agent that cannot end the run",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-3.1: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "FM-3.1 (premature termination) never happens for `coder`: only a reviewer (`role: reviewer`) or a speaker in a chat that ends on `mentions` can end the conversation",
    },
    Case {
        name: "ignored termination by an agent that cannot end the run",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {role: planner, failures: {FM-1.5: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:99",
        message: "FM-1.5 (unaware of termination conditions) never happens for `coder`",
    },
];

#[test]
fn malformed_simulated_agents_point_at_the_problem_and_write_nothing() {
    check_cases(GRAPH_BASE, SIMULATE_CASES);
    // Without a graph no turn acts a failure out.
    let s = Scratch::new();
    let file = s.write(
        "nog.yaml",
        &BASE.replacen(
            "    model: sim\n",
            "    model: sim\n    simulate: {failures: {FM-1.2: 0.1}}\n",
            1,
        ),
    );
    let out = Crucible::new(&["validate"]).arg(&file).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nog.yaml:10:26: error: failures are acted out only in the turns of a graph, and this scenario has no `graph`"),
        "{stderr}"
    );
    // In a chat that ends on a mention, any participant can end it early.
    let chat = chat_scenario(
        "speakers: round_robin",
        "{any: [{mentions: DONE}, {max_messages: 6}]}",
    ).replacen(
        "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
        "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-3.1: 0.2, FM-1.5: 0.2}}}",
        1,
    );
    assert!(chat.contains("FM-3.1"));
    Crucible::new(&["validate"])
        .arg(s.write("chat.yaml", &chat))
        .ok();
}

#[test]
fn graph_validation_reports_every_problem() {
    let s = Scratch::new();
    let text = GRAPH_BASE
        .replace("review: {agent: reviewer}", "review: {agent: reviwer}")
        .replace("{from: plan, to: code}", "{from: plan, to: cod}")
        .replace("max_visits: 3", "max_visits: 0");
    let out = Crucible::new(&["graph"])
        .arg(s.write("s.yaml", &text))
        .output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for wanted in [
        "s.yaml:18:21: error: unknown agent `reviwer`",
        "s.yaml:23:24: error: unknown node `cod`",
        "s.yaml:27:58: error: `max_visits` must be at least 1",
        "3 error(s)",
    ] {
        assert!(stderr.contains(wanted), "{wanted} in:\n{stderr}");
    }
}

#[test]
fn graph_prints_its_edges_and_dot() {
    let s = Scratch::new();
    // A fan-out from `plan` gathered by a vote, and a conditional edge.
    let file = s.write(
        "s.yaml",
        &GRAPH_BASE
            .replace("    gate:\n", "    second: {agent: coder}\n    merge: {join: vote, max_visits: 2}\n    gate:\n")
            .replace(
                "    - {from: plan, to: code}\n",
                "    - {from: plan, to: code}\n    - {from: plan, to: second}\n    - {from: second, to: merge}\n    - {from: code, to: merge, when: {regex: \"^DONE\"}}\n    - {from: merge, to: END}\n",
            ),
    );
    let outline = Crucible::new(&["graph"]).arg(&file).ok();
    for line in [
        "gate: router by contains",
        "merge: join vote, max visits 2",
        "code -> merge  [regex /^DONE/]",
        "gate -> code  [option REVISE, max visits 3]",
    ] {
        assert!(outline.lines().any(|l| l == line), "{line} in:\n{outline}");
    }
    let dot = Crucible::new(&["graph", "--dot"]).arg(&file).ok();
    insta::assert_snapshot!("graph_dot", dot);

    // A scenario without a graph has nothing to draw.
    let plain = s.write("plain.yaml", BASE);
    let out = Crucible::new(&["graph"]).arg(&plain).output();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no `graph` section"));
}

/// Walk `scenario`'s graph, answering every agent turn with `say(agent
/// name, messages so far)` (a token per byte, a second per message), every
/// join with its branches joined by `|`, every verdict with whether the
/// message says OK, and every summary with the messages it covers; the
/// walker after the run.
fn walk_graph(
    scenario: &crucible::scenario::Scenario,
    mut say: impl FnMut(&str, usize) -> String,
) -> (
    crucible::engine::walker::Walker<'_>,
    crucible::engine::walker::Termination,
) {
    use crucible::engine::walker::{Step, Walker};
    let graph = scenario.graph.as_ref().expect("a graph");
    let mut walker = Walker::new(graph, scenario.seed);
    for _ in 0..100_000 {
        match walker.step() {
            Step::Speak { agent, .. } | Step::Choose { agent, .. } => {
                let text = say(&scenario.agents[agent].name, walker.messages().len());
                // A token per byte; a second per message so far.
                let tokens = text.len() as u64;
                walker.set_clock(walker.messages().len() as f64);
                walker.deliver(text, tokens);
            }
            Step::Verify { message, .. } => {
                let accepted = walker.messages()[message].text.contains("OK");
                walker.accept(accepted);
            }
            Step::Summarize { messages, .. } => {
                let text = format!("summary of {messages:?}");
                walker.deliver(text, 0);
            }
            Step::Join { branches, .. } => {
                let text = branches
                    .iter()
                    .map(|&b| walker.messages()[b].text.clone())
                    .collect::<Vec<_>>()
                    .join("|");
                walker.deliver(text, 0);
            }
            Step::Done(why) => return (walker, why),
        }
    }
    panic!("the walk did not end");
}

#[test]
fn plan_code_review_walks_until_approved_or_its_revisions_run_out() {
    use crucible::engine::walker::Termination;
    let s = Scratch::new();
    let scenario =
        crucible::scenario::validator::load_scenario(&s.write("g.yaml", GRAPH_BASE), &[]).unwrap();
    // Approved at the second review: plan, code, review, code, review.
    let mut reviews = 0;
    let (walker, why) = walk_graph(&scenario, |agent, n| match agent {
        "reviewer" => {
            reviews += 1;
            if reviews == 2 {
                "APPROVED".into()
            } else {
                "REVISE please".into()
            }
        }
        other => format!("{other} #{n}"),
    });
    assert_eq!(why, Termination::End);
    let senders: Vec<&str> = walker
        .messages()
        .iter()
        .map(|m| scenario.agents[m.sender.unwrap()].name.as_str())
        .collect();
    assert_eq!(
        senders,
        ["planner", "coder", "reviewer", "coder", "reviewer"]
    );
    assert_eq!(walker.final_message().unwrap().text, "APPROVED");
    // Each message answers the one before it; a review reaches the gate and
    // the node the gate routes it to.
    let graph = scenario.graph.as_ref().unwrap();
    let receivers: Vec<Vec<&str>> = walker
        .messages()
        .iter()
        .map(|m| {
            m.receivers
                .iter()
                .map(|&r| graph.graph[r].name.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        receivers,
        [
            vec!["code"],
            vec!["review"],
            vec!["gate", "code"],
            vec!["review"],
            vec!["gate", "END"]
        ]
    );
    for (i, m) in walker.messages().iter().enumerate() {
        assert_eq!(m.reply_to, i.checked_sub(1));
    }
    // Never approved: the REVISE edge allows three rounds, then the run ends.
    let (walker, why) = walk_graph(&scenario, |agent, _| format!("{agent}: REVISE"));
    assert_eq!(why, Termination::MaxVisits);
    assert_eq!(walker.messages().len(), 3 + 3 * 2);
    assert_eq!(walker.turns(), 3 + 4 + 3 * 2);
}

/// A random valid graph: a chain START → n0 → … → END of agent nodes (every
/// third a group chat), plus
/// forward edges (plain or conditional), back edges limited by
/// `max_visits` (or by `max_turns` alone), and node limits.
#[derive(Debug, Clone)]
struct RandomGraph {
    nodes: usize,
    /// (from, to, kind): 0 plain forward, 1 conditional forward, else a
    /// back edge limited to kind − 1 visits (or unlimited under max_turns).
    extra: Vec<(usize, usize, u8)>,
    node_limits: Vec<Option<u8>>,
    max_turns: Option<u8>,
}

impl RandomGraph {
    fn yaml(&self) -> String {
        let mut text = String::from(
            "name: random\nmodels:\n  sim: {provider: simulated, distribution: {p_correct: 0.5, delta: 0.2}}\n\
             agents:\n  a: {model: sim, prompt: \"{{ question }}\"}\n  b: {model: sim, prompt: \"{{ question }}\"}\n\
             dataset:\n  synthetic: {count: 1}\nstrategies:\n  - {kind: self_consistency, agent: a, n: 1}\ngraph:\n",
        );
        if let Some(m) = self.max_turns {
            text += &format!("  max_turns: {m}\n");
        }
        text += "  nodes:\n";
        for i in 0..self.nodes {
            let limit = self.node_limits[i].map_or(String::new(), |m| format!(", max_visits: {m}"));
            let kind = match i % 3 {
                0 => "agent: a",
                1 => "agent: b",
                _ => {
                    "chat: {participants: [a, b], speakers: random, until: {any: [{mentions: x}, {max_messages: 3}]}}"
                }
            };
            text += &format!("    n{i}: {{{kind}{limit}}}\n");
        }
        text += "  edges:\n    - {from: START, to: n0}\n";
        for i in 0..self.nodes {
            let next = if i + 1 == self.nodes {
                "END".to_owned()
            } else {
                format!("n{}", i + 1)
            };
            text += &format!("    - {{from: n{i}, to: {next}}}\n");
        }
        for &(a, b, kind) in &self.extra {
            let (lo, hi) = (a.min(b) % self.nodes, a.max(b) % self.nodes);
            text += &match kind {
                0 if lo < hi => format!("    - {{from: n{lo}, to: n{hi}}}\n"),
                1 => format!("    - {{from: n{lo}, to: n{hi}, when: {{contains: x}}}}\n"),
                0 => continue,
                k if self.max_turns.is_some() && k % 2 == 0 => {
                    format!("    - {{from: n{hi}, to: n{lo}}}\n")
                }
                k => format!("    - {{from: n{hi}, to: n{lo}, max_visits: {}}}\n", k - 1),
            };
        }
        text
    }
}

fn random_graphs() -> impl Strategy<Value = RandomGraph> {
    (1usize..6).prop_flat_map(|nodes| {
        (
            prop::collection::vec((0..nodes, 0..nodes, 0u8..5), 0..6),
            prop::collection::vec(prop::option::of(1u8..4), nodes),
            prop::option::of(1u8..40),
        )
            .prop_map(move |(extra, node_limits, max_turns)| RandomGraph {
                nodes,
                extra,
                node_limits,
                max_turns,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every run of a valid graph ends, within its turn, node and edge
    /// limits, whatever the agents say.
    #[test]
    fn every_graph_run_ends_within_its_limits(
        g in random_graphs(),
        texts in prop::collection::vec(prop::bool::ANY, 64),
    ) {
        let s = Scratch::new();
        let file = s.write("g.yaml", &g.yaml());
        let scenario = match crucible::scenario::validator::load_scenario(&file, &[]) {
            Ok(s) => s,
            // A node limit can leave a join-free graph valid but a
            // conditional self-loop is still a cycle: only valid graphs count.
            Err(d) => return Err(TestCaseError::reject(format!("{d:?}"))),
        };
        let graph = scenario.graph.as_ref().unwrap();
        let (walker, _) = walk_graph(&scenario, |_, n| {
            if texts[n % texts.len()] { "x".into() } else { "y".into() }
        });
        let limit = graph.max_turns.unwrap_or(crucible::engine::walker::HARD_TURN_LIMIT);
        prop_assert!(walker.turns() <= limit, "{} turns", walker.turns());
        for i in graph.graph.node_indices() {
            if let Some(m) = graph.graph[i].max_visits {
                prop_assert!(walker.node_visits(i) <= m);
            }
        }
        for e in graph.graph.edge_indices() {
            if let Some(m) = graph.graph[e].max_visits {
                prop_assert!(walker.edge_visits(e) <= m);
            }
        }
        for (i, m) in walker.messages().iter().enumerate() {
            prop_assert!(m.reply_to.is_none_or(|r| r < i));
        }
    }
}

#[test]
fn a_fan_out_is_joined_once_every_branch_arrives() {
    use crucible::engine::walker::Termination;
    let s = Scratch::new();
    let text = GRAPH_BASE.split("graph:\n").next().unwrap().to_owned()
        + "graph:\n  nodes:\n    left: {agent: planner}\n    right: {agent: coder}\n    both: {join: concatenate}\n    pick: {join: vote}\n  \
           edges:\n    - {from: START, to: left}\n    - {from: START, to: right}\n    - {from: left, to: both}\n    - {from: right, to: both}\n    \
           - {from: both, to: pick}\n    - {from: left, to: pick}\n    - {from: pick, to: END}\n";
    let scenario =
        crucible::scenario::validator::load_scenario(&s.write("j.yaml", &text), &[]).unwrap();
    let (walker, why) = walk_graph(&scenario, |agent, _| agent.to_uppercase());
    assert_eq!(why, Termination::End);
    let texts: Vec<&str> = walker.messages().iter().map(|m| m.text.as_str()).collect();
    // Both branches speak; `both` concatenates them; `pick` gets `left`'s
    // message and `both`'s and is handed them to combine (here joined by |).
    assert_eq!(
        texts,
        [
            "PLANNER",
            "CODER",
            "PLANNER\n\nCODER",
            "PLANNER|PLANNER\n\nCODER"
        ]
    );
    assert_eq!(
        walker.final_message().unwrap().text,
        "PLANNER|PLANNER\n\nCODER"
    );
    assert_eq!(walker.messages()[2].sender, None);
}

/// A chat of the three agents, its `speakers` and `until` filled in by
/// each test.
fn chat_scenario(speakers: &str, until: &str) -> String {
    // With a manager, the reviewer manages the other two.
    let participants = if speakers.contains("manager") {
        "[planner, coder]"
    } else {
        "[planner, coder, reviewer]"
    };
    GRAPH_BASE.split("graph:\n").next().unwrap().to_owned()
        + &format!(
            "graph:\n  nodes:\n    room:\n      chat:\n        participants: {participants}\n        {speakers}\n        until: {until}\n  \
             edges:\n    - {{from: START, to: room}}\n    - {{from: room, to: END}}\n"
        )
}

#[test]
fn group_chats_pick_speakers_and_end_as_their_conditions_say() {
    use crucible::engine::walker::Termination;
    let s = Scratch::new();
    let load = |name: &str, speakers: &str, until: &str| {
        crucible::scenario::validator::load_scenario(
            &s.write(name, &chat_scenario(speakers, until)),
            &[],
        )
        .unwrap()
    };
    let senders = |sc: &crucible::scenario::Scenario,
                   w: &crucible::engine::walker::Walker<'_>|
     -> Vec<String> {
        w.messages()
            .iter()
            .map(|m| sc.agents[m.sender.unwrap()].name.clone())
            .collect()
    };
    // Round robin until a mention, or six messages.
    let sc = load(
        "rr.yaml",
        "speakers: round_robin",
        "{any: [{mentions: TERMINATE}, {max_messages: 6}]}",
    );
    let (w, why) = walk_graph(&sc, |agent, _| agent.into());
    assert_eq!(why, Termination::End);
    assert_eq!(
        senders(&sc, &w),
        [
            "planner", "coder", "reviewer", "planner", "coder", "reviewer"
        ]
    );
    assert_eq!(w.turns(), 6);
    let (w, _) = walk_graph(&sc, |agent, n| {
        if n == 3 {
            "TERMINATE".into()
        } else {
            agent.into()
        }
    });
    assert_eq!(w.messages().len(), 4);
    assert_eq!(w.final_message().unwrap().text, "TERMINATE");
    // Each message answers the one before; the last is passed on to END.
    assert!(
        w.messages()
            .iter()
            .enumerate()
            .all(|(i, m)| m.reply_to == i.checked_sub(1))
    );
    let graph = sc.graph.as_ref().unwrap();
    let last: Vec<&str> = w.messages()[3]
        .receivers
        .iter()
        .map(|&r| graph.graph[r].name.as_str())
        .collect();
    assert_eq!(last, ["room", "END"]);

    // A manager naming the next speaker; a reply naming nobody falls back
    // to the participant after the last speaker.
    let sc = load(
        "m.yaml",
        "speakers: manager\n        manager: reviewer",
        "{max_messages: 5}",
    );
    let mut picks = ["coder", "nobody at all", "I pick the CODER", "coder", "hm"].into_iter();
    let (w, _) = walk_graph(&sc, |agent, _| {
        if agent == "reviewer" {
            picks.next().unwrap().into()
        } else {
            format!("{agent} speaks")
        }
    });
    assert_eq!(
        senders(&sc, &w),
        ["coder", "planner", "coder", "coder", "planner"]
    );

    // A router picking the next speaker from the last message (the chat's
    // first reads the message that reached it); one matching nobody falls
    // back like a manager, and the trace has each pick.
    let sc = load(
        "rt.yaml",
        "speakers: router\n        router: {by: contains, options: [coder, reviewer], match: {coder: to coder, reviewer: to reviewer}}",
        "{max_messages: 5}",
    );
    let script = [
        "to reviewer",
        "nothing",
        "to coder",
        "to coder again",
        "done",
    ];
    let (w, _) = walk_graph(&sc, |_, n| script[n].into());
    assert_eq!(
        senders(&sc, &w),
        ["planner", "reviewer", "planner", "coder", "coder"]
    );
    let routed: Vec<Option<usize>> = w
        .events()
        .iter()
        .filter_map(|e| match e {
            crucible::engine::walker::Event::Routed { option, .. } => Some(*option),
            _ => None,
        })
        .collect();
    assert_eq!(routed, [None, Some(1), None, Some(0), Some(0)]);

    // Random speakers: seeded, never the same one twice in a row.
    let sc = load("r.yaml", "speakers: random", "{max_messages: 40}");
    let (w, _) = walk_graph(&sc, |agent, _| agent.into());
    let order = senders(&sc, &w);
    assert!(order.windows(2).all(|p| p[0] != p[1]), "{order:?}");
    assert!(
        ["planner", "coder", "reviewer"]
            .iter()
            .all(|a| order.iter().any(|o| o == a))
    );
    assert_eq!(
        walk_graph(&sc, |agent, _| agent.into()).0.messages(),
        w.messages()
    );

    // Tokens (a token per byte), the clock (a second a message) and a
    // verifier's verdict, composed.
    let sc = load("t.yaml", "speakers: round_robin", "{max_tokens: 30}");
    let (w, _) = walk_graph(&sc, |_, _| "1234567890".into());
    assert_eq!(w.messages().len(), 3);
    let sc = load("c.yaml", "speakers: round_robin", "{timeout: 4.5}");
    let (w, _) = walk_graph(&sc, |_, _| "tick".into());
    assert_eq!(w.messages().len(), 6);
    let sc = load(
        "v.yaml",
        "speakers: round_robin",
        "{any: [{all: [{verifier: oracle}, {max_messages: 2}]}, {max_messages: 9}]}",
    );
    let (w, _) = walk_graph(&sc, |_, n| {
        if n == 0 {
            "OK".into()
        } else if n == 4 {
            "OK again".into()
        } else {
            "no".into()
        }
    });
    assert_eq!(w.messages().len(), 5);
}

#[test]
fn each_speaker_sees_the_messages_its_view_allows() {
    use crucible::engine::walker::{Step, Walker};
    let s = Scratch::new();
    let text = GRAPH_BASE.split("graph:\n").next().unwrap().to_owned()
        + "graph:\n  nodes:\n    first: {agent: planner}\n    second: {agent: coder, view: {last: 1}}\n    \
           third: {agent: reviewer, view: addressed}\n    fourth: {agent: coder, view: {summary: planner}}\n    \
           room: {chat: {participants: [planner, coder], until: {max_messages: 3}}, view: addressed}\n  \
           edges:\n    - {from: START, to: first}\n    - {from: first, to: second}\n    - {from: second, to: third}\n    \
           - {from: third, to: fourth}\n    - {from: fourth, to: room}\n    - {from: room, to: END}\n";
    let scenario =
        crucible::scenario::validator::load_scenario(&s.write("v.yaml", &text), &[]).unwrap();
    let graph = scenario.graph.as_ref().unwrap();
    let mut walker = Walker::new(graph, 0);
    let mut seen: Vec<(String, Vec<usize>)> = Vec::new();
    let mut summaries = Vec::new();
    loop {
        match walker.step() {
            Step::Speak { node, agent } => {
                let name = graph.graph[node].name.clone();
                seen.push((name.clone(), walker.view(node, agent)));
                let text = if name == "room" {
                    "over to Planner".into()
                } else {
                    name
                };
                walker.deliver(text, 0);
            }
            Step::Summarize {
                agent,
                messages,
                previous,
                ..
            } => {
                assert_eq!(scenario.agents[agent].name, "planner");
                summaries.push((messages, previous));
                walker.deliver("the story so far".into(), 0);
            }
            Step::Done(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Messages: 0 first, 1 second, 2 third, 3 the summary, 4 fourth, 5-7 the chat.
    assert_eq!(summaries, [(vec![0, 1, 2], None)]);
    assert!(walker.messages()[3].summary);
    assert_eq!(
        seen,
        [
            ("first".to_owned(), vec![]),
            ("second".to_owned(), vec![0]),
            ("third".to_owned(), vec![1]),
            ("fourth".to_owned(), vec![3]),
            // In the chat: what was passed in, then what names the speaker.
            ("room".to_owned(), vec![4]),
            ("room".to_owned(), vec![4]),
            ("room".to_owned(), vec![4, 5, 6]),
        ]
    );
}

/// A debate: `pro` opens, `con` answers, `judge` decides; strategies wrap
/// whole runs of it (`agent: graph`), and the judge alone for comparison.
const DEBATE: &str = r#"name: debate
seed: 3
models:
  sim: {provider: simulated, distribution: {p_correct: 0.5, delta: 0.2, wrong_answers: 3}}
agents:
  pro: {model: sim, prompt: "Argue for an answer: {{ question }}"}
  con: {model: sim, prompt: "Argue against: {{ question }}"}
  judge: {model: sim, prompt: "Decide: {{ question }}"}
dataset:
  synthetic: {count: 60}
verifiers:
  oracle: {kind: oracle}
strategies:
  - {kind: self_consistency, agent: graph, n: [1, 4]}
  - {kind: best_of_n, agent: graph, verifier: oracle, n: 4}
  - {kind: self_consistency, name: judge_alone, agent: judge, n: 4}
graph:
  nodes:
    opening: {agent: pro}
    rebuttal: {agent: con, view: {last: 1}}
    verdict: {agent: judge}
  edges:
    - {from: START, to: opening}
    - {from: opening, to: rebuttal}
    - {from: rebuttal, to: verdict}
    - {from: verdict, to: END}
"#;

#[test]
fn strategies_wrap_whole_graph_runs_traced_turn_by_turn() {
    let s = Scratch::new();
    let file = s.write("debate.yaml", DEBATE);
    let run = |db: &Path, concurrency: &str| {
        Crucible::new(&["run", "--json", "--concurrency", concurrency])
            .arg(&file)
            .db(db)
            .ok()
    };
    let db = s.path("d.db");
    let recorded = run(&db, "16");
    let v: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    let count = |sql: &str| query::<i64>(&db, sql);
    // Every turn of every run is a traced call: 60 tasks × 4 runs × 3 turns.
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE strategy = 'graph'"),
        720
    );
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE strategy = 'graph' GROUP BY agent LIMIT 1"),
        240
    );
    // The rebuttal sees the opening in its prompt; the verdict sees both.
    assert_eq!(
        count(
            "SELECT count(*) FROM call_view c JOIN samples s ON s.call_id = c.call_id
             WHERE s.strategy = 'graph' AND c.agent = 'judge'
               AND c.prompt LIKE '%The conversation so far:%pro: %con: %'"
        ),
        240
    );
    // A run's answer is its verdict: at n = 1 the graph's accuracy is the
    // share of correct verdicts.
    let verdicts: f64 = query(
        &db,
        "SELECT avg(correct) FROM samples WHERE strategy = 'graph' AND agent = 'judge'",
    );
    let single = num(result(&v, "self_consistency", 1), "accuracy");
    assert!((single - verdicts).abs() < 1e-9, "{single} {verdicts}");
    assert!(num(result(&v, "best_of_n", 4), "accuracy") > single);
    assert_eq!(
        count("SELECT count(*) FROM pools WHERE agent = 'graph'"),
        60
    );
    // Each run's messages and events, and its end.
    assert_eq!(
        count("SELECT count(*) FROM graph_runs WHERE ending = 'end' AND turns = 3 AND final = 2"),
        240
    );
    assert_eq!(count("SELECT count(*) FROM messages"), 720);
    assert_eq!(
        count(
            "SELECT count(*) FROM messages m WHERE m.node = 'verdict' AND m.receivers = '[\"END\"]'
               AND m.reply_to = 1 AND EXISTS (SELECT 1 FROM samples s WHERE s.run_id = m.run_id
                 AND s.task_index = m.task_index AND s.strategy = 'graph' AND s.agent = m.sender
                 AND s.text = m.text)"
        ),
        240
    );
    assert_eq!(
        count("SELECT count(*) FROM graph_events WHERE kind = 'edge'"),
        240 * 4
    );
    assert_eq!(
        count("SELECT count(*) FROM graph_events WHERE kind = 'terminated' AND detail = 'end'"),
        240
    );
    let task: String = query(&db, "SELECT task_id FROM tasks WHERE task_index = 0");
    let transcript = Crucible::new(&["show", "1", "--transcript", &task])
        .db(&db)
        .ok();
    assert!(
        transcript.contains("── graph run 3 · end · 3 turns"),
        "{transcript}"
    );
    assert!(
        transcript.contains("[1] turn 1 · rebuttal · con → verdict"),
        "{transcript}"
    );
    assert!(
        transcript.contains("[2] turn 2 · verdict · judge → END  ◀ answer"),
        "{transcript}"
    );
    let out = Crucible::new(&["show", "1", "--transcript", &format!("{task}x")])
        .db(&db)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "run 1 has no task `{task}x` (its 60 task(s) run from `{task}` to "
        )) && stderr.contains(&format!("did you mean `{task}`?")),
        "{stderr}"
    );
    let analysis = Crucible::new(&["analyze", "1", "--bootstrap", "0"])
        .db(&db)
        .json();
    let graph_pools = analysis["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "graph")
        .unwrap();
    assert_eq!(graph_pools["pool_size"], 4);

    // The same results at any concurrency, and after a stop and a resume.
    assert_eq!(
        results_without_ids(&run(&s.path("one.db"), "1")),
        results_without_ids(&recorded)
    );
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "300"])
        .arg(&file)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    // Analyzed while stopped: the graph's finished tasks (stored pools, no
    // sample rows) beside the other agents' samples so far.
    let partial = Crucible::new(&["analyze", "1", "--bootstrap", "0"])
        .db(&stopped)
        .json();
    let tasks_of = |agent: &str| {
        partial["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == agent)
            .map(|a| a["tasks"].as_i64().unwrap())
    };
    let finished = query::<i64>(&stopped, "SELECT count(*) FROM pools WHERE agent = 'graph'");
    assert!(finished > 0 && finished < 60, "{finished}");
    assert_eq!(tasks_of("graph"), Some(finished));
    assert!(tasks_of("judge").is_some_and(|t| t >= finished));
    let unstarted: String = query(
        &stopped,
        "SELECT task_id FROM tasks WHERE task_index NOT IN (SELECT task_index FROM graph_runs)
         ORDER BY task_index LIMIT 1",
    );
    let out = Crucible::new(&["show", "1", "--transcript", &unstarted])
        .db(&stopped)
        .output();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "task `{unstarted}` of run 1 has no graph runs: the scenario has no `graph`, or the run stopped"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&stopped).ok();
    assert_eq!(
        results_without_ids(&resumed),
        results_without_ids(&recorded)
    );
    assert_eq!(
        query::<i64>(
            &stopped,
            "SELECT count(*) FROM samples WHERE strategy = 'graph'"
        ),
        720
    );
    assert_eq!(
        query::<i64>(&stopped, "SELECT count(*) FROM graph_runs"),
        240
    );
}

#[test]
fn shipped_graph_scenarios_run_on_simulated_agents() {
    // (scenario, tasks, runs per task, calls per message, SQL true of every run)
    for (name, tasks, runs, per_message, every_run) in [
        // pro, con, pro, con, judge; the judge sides with an answer it heard.
        (
            "debate.yaml",
            100,
            8,
            1,
            "turns = 5 AND (SELECT m.text FROM messages m WHERE m.run_id = g.run_id
               AND m.task_index = g.task_index AND m.attempt = g.attempt AND m.position = 4)
               LIKE 'Having weighed the arguments, I side with %'",
        ),
        // Until APPROVED, or the three revisions are spent.
        (
            "plan-code-review.yaml",
            100,
            4,
            1,
            "(ending = 'end') = ((SELECT m.text FROM messages m WHERE m.run_id = g.run_id
               AND m.task_index = g.task_index AND m.attempt = g.attempt
               AND m.position = g.final) LIKE 'APPROVED.%')",
        ),
        // A lead's pick before each message; ten messages, or fewer when two
        // in a row agree and the second says TERMINATE.
        (
            "groupchat.yaml",
            50,
            4,
            2,
            "(SELECT count(*) FROM messages m WHERE m.run_id = g.run_id
               AND m.task_index = g.task_index AND m.attempt = g.attempt) BETWEEN 2 AND 10",
        ),
    ] {
        let s = Scratch::new();
        let (db, v) = run_shipped(&s, name);
        assert_eq!(v["status"], "completed", "{name}");
        assert_eq!(
            query::<i64>(&db, "SELECT count(*) FROM samples WHERE strategy = 'graph'"),
            per_message * query::<i64>(&db, "SELECT count(*) FROM messages"),
            "{name}"
        );
        assert_eq!(
            query::<i64>(
                &db,
                &format!("SELECT count(*) FROM graph_runs g WHERE {every_run}")
            ),
            tasks * runs,
            "{name}"
        );
        assert_eq!(
            query::<i64>(&db, "SELECT count(*) FROM pools WHERE agent = 'graph'"),
            tasks,
            "{name}"
        );
    }
}

/// The shipped debate, moved onto the real llama.cpp server and its
/// arithmetic questions with `--set`: every turn a real completion, each
/// agent prompted with the messages before it.
#[test]
fn llama_cpp_runs_a_debate_graph() {
    let url = llama_url();
    let s = Scratch::new();
    let db = s.path("debate.db");
    let model = format!(
        "models.sim={{provider: openai, base_url: \"{url}/v1\", model: smollm2-135m-instruct, \
         temperature: 0.8, max_tokens: 32, max_retries: 3, timeout: 60}}"
    );
    let v = Crucible::new(&["run"])
        .arg(root().join("scenarios/debate.yaml"))
        .args(&[
            "--set",
            &model,
            "--set",
            "dataset={file: data/arithmetic.jsonl, limit: 3}",
            "--set",
            "answer={extract: last_number}",
            "--set",
            "strategies=[{kind: self_consistency, agent: graph, n: 2}]",
        ])
        .db(&db)
        .args_concurrency(4)
        .json();
    assert_eq!(v["status"], "completed", "{v}");
    let count = |sql: &str| query::<i64>(&db, sql);
    // 3 tasks × 2 debates × 5 turns, each a real call.
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE strategy = 'graph'"),
        30
    );
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE provider = 'openai'"),
        30
    );
    assert_eq!(
        count("SELECT count(*) FROM graph_runs WHERE ending = 'end' AND turns = 5"),
        6
    );
    // The judge's prompt holds the four real arguments before it.
    assert_eq!(
        count(
            "SELECT count(*) FROM messages m JOIN messages a ON a.run_id = m.run_id
               AND a.task_index = m.task_index AND a.attempt = m.attempt AND a.position < m.position
             WHERE m.node = 'verdict' AND EXISTS (
               SELECT 1 FROM samples s JOIN call_view c ON c.call_id = s.call_id
               WHERE s.run_id = m.run_id AND s.task_index = m.task_index AND s.strategy = 'graph'
                 AND s.agent = 'judge' AND s.text = m.text
                 AND instr(c.prompt, a.sender || ': ' || a.text) > 0)"
        ),
        6 * 4
    );
    let transcript = Crucible::new(&["show", "1", "--transcript", "add-01"])
        .db(&db)
        .ok();
    assert!(
        transcript.contains("[4] turn 4 · verdict · judge → END  ◀ answer"),
        "{transcript}"
    );
}

#[test]
fn a_verifier_join_keeps_the_branch_its_verifier_scores_highest() {
    // Two solvers in parallel; the oracle join keeps a correct branch when
    // either has one, so one run is right exactly when a branch is.
    let s = Scratch::new();
    let text = DEBATE.split("graph:\n").next().unwrap().to_owned()
        + "graph:\n  nodes:\n    left: {agent: pro}\n    right: {agent: con}\n    \
           pick: {join: verifier, verifier: oracle}\n  edges:\n    - {from: START, to: left}\n    \
           - {from: START, to: right}\n    - {from: left, to: pick}\n    - {from: right, to: pick}\n    \
           - {from: pick, to: END}\n";
    let text = text
        .replace("n: [1, 4]}", "n: 1}")
        .replace(", n: 4}", ", n: 1}");
    let (db, v) = run_json(&s, &text);
    let either: f64 = query(
        &db,
        "SELECT avg(c) FROM (SELECT max(correct) AS c FROM samples
           WHERE strategy = 'graph' GROUP BY task_index)",
    );
    let single = num(result(&v, "self_consistency", 1), "accuracy");
    assert!((single - either).abs() < 1e-9, "{single} {either}");
    // Not merely the first branch.
    let left: f64 = query(
        &db,
        "SELECT avg(correct) FROM samples WHERE strategy = 'graph' AND agent = 'pro'",
    );
    assert!(single > left + 0.1, "{single} {left}");
}

/// For each mode of scenarios/failures.yaml: the agent acting it out, its
/// configured rate, the messages where it can happen (a WHERE clause over
/// `messages m`), and the mark an injected message carries (one over
/// `messages m` as well).
const INJECTED_MODES: &[(&str, &str, f64, &str, &str)] = &[
    // The planner can disobey its role or withhold in every turn.
    (
        "FM-1.2",
        "planner",
        0.1,
        "1",
        "instr(m.text, :rule_myself) > 0",
    ),
    ("FM-2.4", "planner", 0.1, "1", "m.text = :withheld"),
    // Repeating a step needs a step of one's own before.
    (
        "FM-1.3",
        "coder",
        0.15,
        "EXISTS (SELECT 1 FROM messages p WHERE p.run_id = m.run_id AND p.task_index = m.task_index
           AND p.attempt = m.attempt AND p.sender = m.sender AND p.position < m.position)",
        "m.text = (SELECT p.text FROM messages p WHERE p.run_id = m.run_id
           AND p.task_index = m.task_index AND p.attempt = m.attempt AND p.sender = m.sender
           AND p.position < m.position ORDER BY p.position DESC LIMIT 1)",
    ),
    // The coder always sees the plan, so it can always start over.
    ("FM-2.1", "coder", 0.1, "1", "instr(m.text, :reset) > 0"),
    // Ignoring input needs an answer from another agent in its view (the
    // last two messages): a review, or a plan that states one.
    (
        "FM-2.5",
        "coder",
        0.15,
        "EXISTS (SELECT 1 FROM messages p WHERE p.run_id = m.run_id AND p.task_index = m.task_index
           AND p.attempt = m.attempt AND p.position >= m.position - 2 AND p.position < m.position
           AND p.sender <> m.sender AND instr(p.text, 'the answer is') > 0)",
        "instr(m.text, :stands) > 0",
    ),
    // A reviewer can always stop, go on, or wave the answer through.
    (
        "FM-1.5",
        "reviewer",
        0.1,
        "1",
        "instr(m.text, :continue) > 0",
    ),
    (
        "FM-3.1",
        "reviewer",
        0.1,
        "1",
        "instr(m.text, :stop_now) > 0",
    ),
    (
        "FM-3.2",
        "reviewer",
        0.15,
        "1",
        "m.text LIKE 'APPROVED.' || char(10) || '%'",
    ),
];

/// Every injected failure of run 1, in order, without the run id.
fn injected_rows(db: &Path) -> Vec<String> {
    table_rows(
        db,
        "SELECT task_index, attempt, position, turn, agent, node, mode FROM injected_failures
         ORDER BY task_index, attempt, position",
    )
}

#[test]
fn injected_failures_happen_at_their_rates_and_are_traced_as_ground_truth() {
    use crucible::model::actor::{CONTINUE, RESET, RULE_MYSELF, STANDS, STOP_NOW, WITHHELD};
    let s = Scratch::new();
    let file = root().join("scenarios/failures.yaml");
    let many = ["--set", "dataset.synthetic.count=300"];
    let db = s.path("one.db");
    let recorded = Crucible::new(&["run", "--json"])
        .arg(&file)
        .args(&many)
        .db(&db)
        .args_concurrency(1)
        .ok();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let marks: [(&str, &str); 6] = [
        (":rule_myself", RULE_MYSELF),
        (":withheld", WITHHELD),
        (":reset", RESET),
        (":stands", STANDS),
        (":continue", CONTINUE),
        (":stop_now", STOP_NOW),
    ];
    let mut off = Vec::new();
    for &(mode, agent, rate, eligible, mark) in INJECTED_MODES {
        let injected = |mode: &str| {
            format!(
                "EXISTS (SELECT 1 FROM injected_failures f WHERE f.run_id = m.run_id
                   AND f.task_index = m.task_index AND f.attempt = m.attempt
                   AND f.position = m.position AND f.mode = '{mode}')"
            )
        };
        let (repeated, injected) = (injected("FM-1.3"), injected(mode));
        // Counts over the agent's messages: eligible, injected, injected
        // where ineligible, injected without the mark, and marked without
        // being injected (unless it repeats a message that was).
        let sql = format!(
            "SELECT sum({eligible}), sum({injected}), sum({injected} AND NOT ({eligible})),
                    sum({injected} AND NOT ({mark})), sum(({mark}) AND NOT {injected} AND NOT {repeated})
             FROM messages m WHERE m.sender = '{agent}' AND m.summary = 0"
        );
        let mut st = conn.prepare(&sql).unwrap();
        let params: Vec<(&str, &dyn rusqlite::ToSql)> = marks
            .iter()
            .filter(|(name, _)| sql.contains(name))
            .map(|(name, text)| (*name, text as &dyn rusqlite::ToSql))
            .collect();
        let (n, k, ineligible, unmarked, unrecorded): (i64, i64, i64, i64, i64) = st
            .query_row(params.as_slice(), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        // An honest revision can come out word for word as the message
        // before; only injected repetitions must.
        let unrecorded = if mode == "FM-1.3" { 0 } else { unrecorded };
        let observed = k as f64 / n as f64;
        let se = (rate * (1.0 - rate) / n as f64).sqrt();
        if n < 300 || (observed - rate).abs() > 5.0 * se || ineligible + unmarked + unrecorded > 0 {
            off.push(format!(
                "{mode}: {k} of {n} eligible ({observed:.3}, rate {rate}, se {se:.3}); \
                 {ineligible} ineligible, {unmarked} without their mark, {unrecorded} marked but not recorded"
            ));
        }
    }
    assert!(off.is_empty(), "{}", off.join("\n"));
    // Nothing is recorded for a mode the scenario does not configure, nor
    // against the wrong agent.
    let stray: i64 = query(
        &db,
        "SELECT count(*) FROM injected_failures f JOIN messages m USING (run_id, task_index, attempt, position)
          WHERE f.agent <> m.sender OR f.turn <> m.turn OR f.node <> m.node
             OR f.mode NOT IN ('FM-1.2','FM-2.4','FM-1.3','FM-2.1','FM-2.5','FM-1.5','FM-3.1','FM-3.2')",
    );
    assert_eq!(stray, 0);

    // The transcript marks an injected message above its text.
    let (task, position, mode): (String, i64, String) = conn
        .query_row(
            "SELECT t.task_id, f.position, f.mode FROM injected_failures f
               JOIN tasks t USING (run_id, task_index) WHERE f.mode = 'FM-2.1' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let transcript = Crucible::new(&["show", "1", "--transcript", &task])
        .db(&db)
        .ok();
    let marked = format!("    ⚠ injected {mode} conversation reset\n    {RESET}");
    assert!(
        transcript.contains(&marked) && transcript.contains(&format!("[{position}] turn ")),
        "{transcript}"
    );

    // The same failures at any concurrency, and after a stop and resume.
    let truth = injected_rows(&db);
    let wide = s.path("wide.db");
    let concurrent = Crucible::new(&["run", "--json"])
        .arg(&file)
        .args(&many)
        .db(&wide)
        .args_concurrency(16)
        .ok();
    assert_eq!(
        results_without_ids(&concurrent),
        results_without_ids(&recorded)
    );
    assert_eq!(injected_rows(&wide), truth);
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "1500"])
        .arg(&file)
        .args(&many)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let partial = injected_rows(&stopped);
    assert!(!partial.is_empty() && partial.len() < truth.len());
    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&stopped).ok();
    assert_eq!(
        results_without_ids(&resumed),
        results_without_ids(&recorded)
    );
    assert_eq!(injected_rows(&stopped), truth);
}

#[test]
fn commands_and_judges_score_graph_runs_traced_under_the_graph() {
    // Two solvers in parallel, joined by a command that checks the answer;
    // whole runs ranked by an `llm` judge on a sim-server.
    let s = Scratch::new();
    let server = SimServer::start(&s.write("judge-server.yaml", JUDGE_SERVER), &[]);
    // Shell builtins only: one process per scored text.
    s.write(
        "check.sh",
        "read -r c\na=${c#*\\\"answer\\\":\\\"}; a=${a%%\\\"*}\n\
         e=${c#*\\\"expected\\\":\\\"}; e=${e%%\\\"*}\n\
         if [ \"$a\" = \"$e\" ]; then echo 1; else echo 0; fi\n",
    );
    let text = format!(
        r#"name: graded
seed: 3
models:
  sim: {{provider: simulated, distribution: {{p_correct: 0.5, delta: 0.2, wrong_answers: 3}}}}
  judge_model: {{provider: openai, base_url: "{}", model: judge, seed: 0}}
agents:
  pro: {{model: sim, prompt: "Solve: {{{{ question }}}}"}}
  con: {{model: sim, prompt: "Solve too: {{{{ question }}}}"}}
dataset:
  synthetic: {{count: 30}}
verifiers:
  check: {{kind: programmatic, check: command, command: [sh, check.sh]}}
  judge: {{kind: llm, model: judge_model}}
strategies:
  - {{kind: best_of_n, agent: graph, verifier: judge, n: [1, 4]}}
  - {{kind: best_of_n, name: checked, agent: graph, verifier: check, n: [1, 4]}}
graph:
  nodes:
    left: {{agent: pro}}
    right: {{agent: con}}
    pick: {{join: verifier, verifier: check}}
  edges:
    - {{from: START, to: left}}
    - {{from: START, to: right}}
    - {{from: left, to: pick}}
    - {{from: right, to: pick}}
    - {{from: pick, to: END}}
"#,
        server.url
    );
    let file = s.write("graded.yaml", &text);
    let db = s.path("g.db");
    let recorded = Crucible::new(&["run", "--json"]).arg(&file).db(&db).ok();
    let v: serde_json::Value = serde_json::from_str(&recorded).unwrap();

    // The command join keeps a correct branch whenever there is one, the
    // right one included.
    let correct = |m: &str| {
        format!(
            "(SELECT max(s.correct) FROM samples s WHERE s.run_id = {m}.run_id
               AND s.task_index = {m}.task_index AND s.strategy = 'graph' AND s.text = {m}.text)"
        )
    };
    let branch = |pos: i64, m: &str| {
        format!(
            "(SELECT {} FROM messages b WHERE b.run_id = {m}.run_id AND b.task_index = {m}.task_index
               AND b.attempt = {m}.attempt AND b.position = {pos})",
            correct("b")
        )
    };
    let count = |sql: &str| query::<i64>(&db, sql);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM messages j WHERE j.position = 2
               AND ({} OR {}) AND NOT {}",
            branch(0, "j"),
            branch(1, "j"),
            correct("j")
        )),
        0
    );
    assert!(
        count(&format!(
            "SELECT count(*) FROM messages j WHERE j.position = 2 AND NOT {} AND {} AND {}",
            branch(0, "j"),
            branch(1, "j"),
            correct("j")
        )) > 0
    );
    // Each branch's verdict is a graph event of the join.
    assert_eq!(
        count(
            "SELECT count(*) FROM graph_events WHERE kind = 'verified' AND node = 'pick'
               AND detail IN ('check on [0]: score 0', 'check on [0]: score 1', 'check on [1]: score 0', 'check on [1]: score 1')"
        ),
        30 * 4 * 2
    );
    // So the checked runs are right exactly when a branch is: 1 - 0.5^2 at
    // n = 1; and ranked by the same command, four runs are right when any is.
    let single = num(result(&v, "checked", 1), "accuracy");
    assert!((single - 0.75).abs() < 0.2, "{single}");
    assert!(num(result(&v, "checked", 4), "accuracy") > single);

    // One judge call per graph run, traced as the verifier's about the
    // graph, its prompt holding the run's final message.
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE role = 'verifier' AND subject = 'graph'"),
        30 * 4
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM calls c JOIN blobs p ON p.hash = c.prompt_hash
               JOIN messages m ON m.task_index = c.task_index AND m.attempt = c.first_sample
                 AND m.position = 2
             WHERE c.role = 'verifier' AND instr(p.text, m.text) > 0"
        ),
        30 * 4
    );
    let judged = result(&v, "best_of_n", 4);
    assert!(num(judged, "mean_verifier_tokens") > 0.0, "{judged}");
    // The offline curves count the judge's tokens too: per graph run, what
    // its verdict on the run's answer cost.
    let per_run = query::<f64>(
        &db,
        "SELECT avg(input_tokens + output_tokens) FROM calls WHERE role = 'verifier' AND subject = 'graph'",
    );
    let analysis = Crucible::new(&["analyze", "1", "--bootstrap", "0"])
        .db(&db)
        .json();
    let curve = analysis["curves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "best_of_n" && c["verifier"] == "judge" && c["n"] == 4)
        .unwrap();
    assert!(
        (num(curve, "mean_verifier_tokens") - 4.0 * per_run).abs() < 1e-9,
        "{curve} vs {per_run} a run"
    );
    assert!(
        (num(curve, "mean_verifier_tokens") - num(judged, "mean_verifier_tokens")).abs() < 1e-9,
        "{curve} vs {judged}"
    );

    // Judging at the join too: each branch is judged, with the prompt of
    // the agent that wrote it, and the pick is not asked about again as the
    // run's answer.
    let joined = s.write(
        "joined.yaml",
        &text.replace(
            "pick: {join: verifier, verifier: check}",
            "pick: {join: verifier, verifier: judge}",
        ),
    );
    let jdb = s.path("joined.db");
    Crucible::new(&["run"]).arg(&joined).db(&jdb).ok();
    let (asked, keys, shown): (i64, i64, i64) = rusqlite::Connection::open(&jdb)
        .unwrap()
        .query_row(
            "SELECT count(*), count(DISTINCT cache_key),
                    sum(instr(p.text, 'Solve: Synthetic question') > 0)
             FROM calls c JOIN blobs p ON p.hash = c.prompt_hash WHERE c.role = 'verifier'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((asked, keys, shown), (30 * 4 * 2, 30 * 4 * 2, 30 * 4));

    // A stopped run resumes to the same results; without the judge's
    // server, its verdicts replay from the trace.
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "200"])
        .arg(&file)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&stopped).ok();
    assert_eq!(
        results_without_ids(&resumed),
        results_without_ids(&recorded)
    );
    drop(server);
    replay_strictly(&db, &recorded);
}

#[test]
fn progress_counts_graph_runs_as_the_samples_planned() {
    // A graph run is one sample of the plan however many turns it takes;
    // plain pools count their samples.
    use std::sync::atomic::Ordering;
    let s = Scratch::new();
    for name in ["plan-code-review.yaml", "quickstart.yaml"] {
        let file = root().join("scenarios").join(name);
        let runner = crucible::engine::runner::Runner::new(crucible::engine::runner::RunOptions {
            db: s.path(&format!("{name}.db")),
            concurrency: 4,
            handle_ctrl_c: false,
            cache: false,
            budget: Default::default(),
            fail_on_error: None,
            overrides: Vec::new(),
        });
        let mut planned = 0;
        runner
            .run(&file, |sc, _| planned = sc.planned_samples())
            .unwrap();
        assert!(planned > 0);
        assert_eq!(
            runner.progress.samples.load(Ordering::Relaxed),
            planned,
            "{name}"
        );
    }
}

#[test]
fn chats_led_by_an_agent_whose_definition_failed_report_it() {
    // The manager (or the llm speaker router's agent) is declared but its
    // definition failed: that is the one diagnostic, not a panic.
    let s = Scratch::new();
    for (name, speakers) in [
        ("m.yaml", "speakers: manager\n        manager: reviewer"),
        (
            "r.yaml",
            "speakers: router\n        router: {by: llm, agent: reviewer, options: [planner, coder]}",
        ),
    ] {
        let text = chat_scenario(speakers, "{max_messages: 4}").replacen(
            "reviewer: {model: sim",
            "reviewer: {model: nosuch",
            1,
        );
        let out = Crucible::new(&["validate"])
            .arg(s.write(name, &text))
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("error: agent `reviewer` uses undefined model `nosuch`")
                && stderr.contains("1 error(s)"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn simulated_verifiers_err_independently_on_the_branches_of_a_run() {
    // An oracle that errs 30% of the time either way, at a join of two
    // branches: on two branches alike in correctness, its verdicts differ
    // about 2 · 0.3 · 0.7 = 42% of the time (never, were one draw shared).
    let s = Scratch::new();
    let text = DEBATE.split("verifiers:\n").next().unwrap().to_owned()
        + "verifiers:\n  shaky: {kind: oracle, false_positive_rate: 0.3, false_negative_rate: 0.3}\n\
           strategies:\n  - {kind: self_consistency, agent: graph, n: 4}\n\
           graph:\n  nodes:\n    left: {agent: pro}\n    right: {agent: con}\n    \
           pick: {join: verifier, verifier: shaky}\n  edges:\n    - {from: START, to: left}\n    \
           - {from: START, to: right}\n    - {from: left, to: pick}\n    - {from: right, to: pick}\n    \
           - {from: pick, to: END}\n";
    let (db, _) = run_json(&s, &text);
    let verdict = |pos: i64| {
        format!(
            "(SELECT e.detail LIKE '%accepted' FROM graph_events e WHERE e.run_id = m.run_id
               AND e.task_index = m.task_index AND e.attempt = m.attempt AND e.kind = 'verified'
               AND e.detail LIKE 'shaky on [{pos}]%')"
        )
    };
    let correct = |pos: i64| {
        format!(
            "(SELECT max(s.correct) FROM samples s JOIN messages b ON b.run_id = s.run_id
               AND b.task_index = s.task_index AND s.text = b.text
             WHERE s.strategy = 'graph' AND b.run_id = m.run_id AND b.task_index = m.task_index
               AND b.attempt = m.attempt AND b.position = {pos})"
        )
    };
    let (alike, differing): (i64, i64) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            &format!(
                "SELECT count(*), sum({} <> {}) FROM graph_runs m WHERE {} = {}",
                verdict(0),
                verdict(1),
                correct(0),
                correct(1)
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let share = differing as f64 / alike as f64;
    assert!(
        alike > 50 && (share - 0.42).abs() < 0.15,
        "{differing} of {alike}"
    );
}
