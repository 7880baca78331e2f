use super::*;

fn parse(text: &str) -> Result<Inventory, InventoryError> {
    Inventory::parse(Path::new("inv.toml"), text)
}

const MINIMAL: &str = r#"
stamp = "lab"
bmc_user = "azsbmc"
profile = "dell-poweredge-r640"
[[bmc]]
name = "node01"
address = "10.0.0.11"
"#;

#[test]
fn the_documented_example_parses() {
    let text = include_str!("../../../inventory.example.toml");
    let inv = parse(text).unwrap();
    assert_eq!((inv.stamp.as_str(), inv.bmc_user.as_str(), inv.bmcs.len()), ("contoso-east", "azsbmc", 3));
    assert_eq!(inv.bmcs[2].profile, "hpe-proliant-dl380-gen10");
    assert_eq!(inv.bmcs[2].endpoint, Endpoint::new("bmc-node03.contoso.local", 8443));
    assert!(matches!(inv.bmcs[1].tls, TlsPolicy::PinnedSha256(_)));
    assert!(matches!(inv.bmcs[0].tls, TlsPolicy::CaFile(_)));
    let pep = inv.pep().unwrap();
    assert_eq!(pep.endpoints.len(), 3);
    assert_eq!(pep.endpoints[0].url(), "http://10.20.30.224:5985/wsman");
    assert_eq!(pep.cloudadmin, r"AZURESTACK\CloudAdmin");
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
}

const LAB_INVENTORY: &str = "stamp = \"lab\"\nbmc_user = \"azsbmc\"\n\n[[bmc]]\nname = \"dell-idrac9-01\"\naddress = \"127.0.0.1:40123\"\npersona = \"dell-idrac9\"\nprofile = \"dell-poweredge-r640\"\ntls = \"sha256:3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f\"\n";

#[cfg(feature = "lab")]
#[test]
fn a_lab_inventory_parses() {
    let inv = parse(LAB_INVENTORY).unwrap();
    assert!(inv.pep.is_none());
    assert!(inv.pep().unwrap_err().to_string().contains("no `[pep]` table"));
}

#[cfg(not(feature = "lab"))]
#[test]
fn a_production_build_refuses_the_lab_persona_key() {
    let error = parse(LAB_INVENTORY).unwrap_err();
    assert!(error.message.contains("unknown field `persona`"), "{error}");
}

#[test]
fn a_secret_in_the_inventory_is_refused_with_its_line() {
    for (text, field) in [
        (format!("{MINIMAL}password = \"x\"\n"), "password"),
        (
            format!("{MINIMAL}[pep]\nendpoints = [\"a\"]\ncloudadmin = 'A\\B'\ncloudadmin_password = \"hunter2\"\n"),
            "cloudadmin_password",
        ),
        (format!("{MINIMAL}bmc_secret=\"x\"\n"), "bmc_secret"),
    ] {
        let error = parse(&text).unwrap_err();
        assert_eq!(error.field.as_deref(), Some(field), "{error}");
        assert_eq!(error.line, Some(text.lines().count()), "{error}");
        assert!(error.to_string().contains("never holds a secret"), "{error}");
        assert!(!error.to_string().contains("hunter2"));
    }
    // A comment mentioning passwords is fine.
    assert!(parse(&format!("{MINIMAL}# passwords = come from the prompt\n")).is_ok());
}

#[test]
fn every_error_names_file_line_and_field() {
    let cases: &[(&str, &str, usize, &str)] = &[
        ("address = \"10.0.0.11\"", "address = \"https://10.0.0.11/redfish\"", 7, "bmc[0].address"),
        ("bmc_user = \"azsbmc\"", "bmc_user = \"a-very-long-bmc-user\"", 3, "bmc_user"),
        ("bmc_user = \"azsbmc\"", "bmc_user = \"bmc admin\"", 3, "bmc_user"),
        ("profile = \"dell-poweredge-r640\"", "profile = \"dell-poweredge-r640\"\ntls = \"sha256:12\"", 5, "tls"),
        ("name = \"node01\"", "name = \"\"", 6, "bmc[0].name"),
    ];
    for (from, to, line, field) in cases {
        let error = parse(&MINIMAL.replace(from, to)).unwrap_err();
        assert_eq!((error.line, error.field.as_deref()), (Some(*line), Some(*field)), "{error}");
        assert!(error.to_string().starts_with(&format!("inv.toml:{line}: `{field}`: ")), "{error}");
    }
    let duplicate = format!("{MINIMAL}[[bmc]]\nname = \"node01\"\naddress = \"10.0.0.12\"\n");
    assert!(parse(&duplicate).unwrap_err().to_string().contains("`node01` is used by another BMC"));
    let same_address = format!("{MINIMAL}[[bmc]]\nname = \"node02\"\naddress = \"10.0.0.11:443\"\n");
    assert!(parse(&same_address).unwrap_err().to_string().contains("listed twice"));
    let unknown = parse(&MINIMAL.replace("stamp", "stmap")).unwrap_err();
    assert_eq!(unknown.line, Some(2), "{unknown}");
    assert!(unknown.message.contains("unknown field `stmap`"), "{unknown}");
    let no_profile = parse(&MINIMAL.replace("profile = \"dell-poweredge-r640\"\n", "")).unwrap_err();
    assert_eq!(no_profile.field.as_deref(), Some("bmc[0].profile"), "{no_profile}");
    let no_bmc = parse("stamp = \"x\"\nbmc_user = \"u\"\n").unwrap_err();
    assert!(no_bmc.message.contains("[[bmc]]"), "{no_bmc}");
}

#[test]
fn the_pep_table_is_checked() {
    let with = |pep: &str| parse(&format!("{MINIMAL}[pep]\n{pep}\n"));
    let four = with("endpoints = [\"a\", \"b\", \"c\", \"d\"]\ncloudadmin = 'A\\B'").unwrap_err();
    assert!(four.message.contains("1 to 3 ERCS"), "{four}");
    let no_domain = with("endpoints = [\"a\"]\ncloudadmin = \"CloudAdmin\"").unwrap_err();
    assert_eq!(no_domain.field.as_deref(), Some("pep.cloudadmin"));
    let half = with("endpoints = [\"a\"]\ncloudadmin = 'A\\B'\ntranscripts = '\\\\s\\t'").unwrap_err();
    assert_eq!(half.field.as_deref(), Some("pep.transcripts_user"));
    let https = with("endpoints = [\"https://10.0.0.4\"]\ncloudadmin = 'A\\B'\ntls = \"insecure\"").unwrap();
    assert_eq!(https.pep.unwrap().endpoints[0].tls, Some(TlsPolicy::Insecure));
    let ignored = with("endpoints = [\"10.0.0.4\"]\ncloudadmin = 'A\\B'\ntls = \"insecure\"").unwrap_err();
    assert_eq!(ignored.field.as_deref(), Some("pep.tls"), "{ignored}");
    let admin = parse(&MINIMAL.replace("azsbmc", "root")).unwrap();
    assert!(admin.warnings[0].contains("well-known"));
}

#[test]
fn stamp_names_that_could_not_name_a_file_are_refused_at_load() {
    let long = "x".repeat(300);
    for bad in ["../etc", "a/b", "..", ".", "", "  ", "a\\nb", "east stamp", "ü", long.as_str()] {
        let error = parse(&MINIMAL.replace("stamp = \"lab\"", &format!("stamp = \"{bad}\""))).unwrap_err();
        assert_eq!((error.line, error.field.as_deref()), (Some(2), Some("stamp")), "{bad:?}: {error}");
    }
    assert!(parse(&MINIMAL.replace("\"lab\"", &format!("\"{long}\""))).unwrap_err().message.contains("at most 64"));
    for good in ["contoso-east", "lab_2.b", &"x".repeat(64)] {
        assert_eq!(parse(&MINIMAL.replace("\"lab\"", &format!("\"{good}\""))).unwrap().stamp, good);
    }
}

#[test]
fn addresses_are_compared_in_canonical_form() {
    let canonical = |a: &str| canonical_address(&a.parse().unwrap());
    for alias in ["127.0.0.1", "127.1", "0x7f.0.0.1", "0x7F.1", "2130706433", "017700000001", "[::ffff:127.0.0.1]"] {
        assert_eq!(canonical(alias), "127.0.0.1:443", "{alias}");
    }
    assert_eq!(canonical("[::FFFF:7f00:1]:8443"), "127.0.0.1:8443");
    assert_eq!(canonical("BMC-01.Contoso.Local."), "bmc-01.contoso.local:443");
    assert_eq!(canonical("[FD00:0:0::1]"), "[fd00::1]:443");
    // Not IPv4: kept as host names.
    for name in ["1e100.net", "256.1.1.1.1", "08.1.1.1", "127.0.0.256"] {
        assert_eq!(canonical(name), format!("{name}:443"), "{name}");
    }
    assert_eq!(canonical("1.2.3.256"), "1.2.3.256:443", "a part over 255 is no address");
}

#[test]
fn one_bmc_listed_twice_under_aliases_is_refused_with_both_places() {
    for alias in ["127.1", "0x7f.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "LOCALHOST.", "localhost"] {
        let first = if alias.to_ascii_lowercase().starts_with("localhost") { "localhost" } else { "127.0.0.1" };
        let text = MINIMAL.replace("10.0.0.11", first);
        let error = parse(&format!("{text}[[bmc]]\nname = \"node02\"\naddress = \"{alias}\"\n")).unwrap_err();
        assert_eq!((error.line, error.field.as_deref()), (Some(10), Some("bmc[1].address")), "{alias}: {error}");
        assert!(error.message.contains("listed twice") && error.message.contains("bmc[0].address"), "{error}");
        assert!(error.message.contains("(line 7)"), "{error}");
    }
    // Another port is another service.
    let other_port = MINIMAL.replace("10.0.0.11", "127.0.0.1");
    parse(&format!("{other_port}[[bmc]]\nname = \"node02\"\naddress = \"127.1:8443\"\n")).unwrap();
}
