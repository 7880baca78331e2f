//! The plan of a rotation for people, and the question before it runs: a reused command line
//! (a dry run's, say) must never rotate a production fleet by accident, so a run asks on the
//! terminal, and without one it needs `--yes`.

use super::render;
use crate::fleet::engine::{ChangeOrder, Plan};
use std::io::{BufRead, Write};

/// The plan as a table of BMCs, then the order and the PEP call.
pub fn render(plan: &Plan) -> String {
    let rows: Vec<Vec<String>> = plan
        .bmcs
        .iter()
        .map(|b| {
            let pin = b.plugin_sha256.as_deref().map_or_else(|| "unpinned".to_owned(), |p| format!("{:.12}…", p));
            let order = match b.order {
                ChangeOrder::First => "first",
                ChangeOrder::Last => "last (cannot go back)",
            };
            vec![
                b.name.clone(),
                b.address.clone(),
                b.profile.clone(),
                format!("{} ({pin})", b.plugin),
                b.tls.clone(),
                b.family.clone(),
                order.to_owned(),
            ]
        })
        .collect();
    let header = ["BMC", "ADDRESS", "PROFILE", "PLUGIN (PIN)", "TLS", "FAMILY", "CHANGES"];
    let mut text = render::table(&header, &rows);
    text.push('\n');
    let last: Vec<&str> = plan.last().map(|b| b.name.as_str()).collect();
    if last.is_empty() {
        text.push_str("- every BMC can return to the old password if the run rolls back\n");
    } else {
        text.push_str(&format!(
            "- {} cannot return to the old password: changed last, once every other BMC holds the new one\n",
            last.join(", ")
        ));
    }
    match &plan.pep {
        Some(pep) => text.push_str(&format!("- then Azure Stack Hub, on {}: {}\n", pep.endpoint, pep.call)),
        None => text.push_str("- Azure Stack Hub is not told (no PEP step)\n"),
    }
    text
}

/// The question a run asks before it changes anything.
pub fn question(plan: &Plan) -> String {
    let pep = if plan.pep.is_some() { " and update Azure Stack" } else { "" };
    format!("Rotate {} BMCs of stamp {}{pep}? [y/N] ", plan.bmcs.len(), plan.stamp)
}

/// Shows the plan and asks; only `y` or `yes` (any case) is a yes, anything else — an empty
/// line, the end of input — is a no.
pub fn confirm(plan: &Plan, mut input: impl BufRead, mut output: impl Write) -> std::io::Result<bool> {
    write!(output, "{}\n{}", render(plan), question(plan))?;
    output.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Whether there is a controlling terminal to ask on (stdin may be a pipe carrying secrets while
/// the operator sits at one).
pub fn has_terminal() -> bool {
    crate::platform::open_terminal().is_ok()
}

/// Asks on the controlling terminal (not stdin, which may carry secrets).
pub fn confirm_on_terminal(plan: &Plan) -> Result<bool, String> {
    let (input, output) =
        crate::platform::open_terminal().map_err(|e| format!("no terminal to confirm on ({e}); give --yes"))?;
    confirm(plan, std::io::BufReader::new(&input), &output).map_err(|e| format!("the terminal: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::engine::{PlannedBmc, PlannedPep};

    fn plan() -> Plan {
        let bmc = |name: &str, order| PlannedBmc {
            name: name.into(),
            address: "https://10.0.0.1".into(),
            profile: "lenovo-xcc2".into(),
            plugin: "lenovo-xcc@0.2.0".into(),
            plugin_sha256: Some("ab".repeat(32)),
            tls: "insecure".into(),
            family: "XCC2".into(),
            firmware: "5.10".into(),
            order,
        };
        Plan {
            stamp: "contoso-east".into(),
            account: "azsbmc".into(),
            bmcs: vec![bmc("node01", ChangeOrder::First), bmc("node02", ChangeOrder::Last)],
            pep: Some(PlannedPep {
                endpoint: "https://10.0.0.9:5986/wsman".into(),
                call: "Set-BmcCredential …".into(),
            }),
        }
    }

    #[test]
    fn only_y_or_yes_is_a_yes() {
        for (answer, yes) in [("y\n", true), ("YES\n", true), (" yes \n", true), ("n\n", false), ("\n", false)] {
            let mut shown = Vec::new();
            assert_eq!(confirm(&plan(), answer.as_bytes(), &mut shown).unwrap(), yes, "{answer:?}");
            let shown = String::from_utf8(shown).unwrap();
            assert!(shown.ends_with("Rotate 2 BMCs of stamp contoso-east and update Azure Stack? [y/N] "), "{shown}");
        }
        assert!(!confirm(&plan(), &b""[..], Vec::new()).unwrap(), "the end of input is a no");
    }

    #[test]
    fn the_plan_names_the_bmcs_that_change_last_and_the_pep_call() {
        let text = render(&plan());
        assert!(text.contains("node02") && text.contains("last (cannot go back)"), "{text}");
        assert!(text.contains("- node02 cannot return to the old password"), "{text}");
        assert!(text.contains("lenovo-xcc@0.2.0 (abababababab…)"), "{text}");
        assert!(text.contains("then Azure Stack Hub, on https://10.0.0.9:5986/wsman: Set-BmcCredential"), "{text}");
    }
}
