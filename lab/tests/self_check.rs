//! Scale: one lab process serves 10,000 BMCs within the machine's default descriptor limit
//! while a client (another process) holds a TLS connection to each and GETs every service root.
//! `bmc-lab self-check` does the work and prints what it measured (lab/README.md, Scale).

use std::process::Command;

#[test]
fn ten_thousand_bmcs_start_and_answer_while_a_client_holds_a_connection_to_each() {
    let out = Command::new(env!("CARGO_BIN_EXE_bmc-lab")).args(["self-check", "--bmcs", "10000"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("10000 TLS connections opened and held"), "{stdout}");
    assert!(stdout.contains("self-check passed: every BMC answered"), "{stdout}");
    // Printed for the log: start time, memory and descriptors of this run.
    println!("{stdout}");
}
