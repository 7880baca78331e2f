//! The read-only resources every vendor's service root links beside accounts and sessions: the
//! computer system and its chassis, `UpdateService`, the `TaskService` and `EventService`, the
//! message registries (the Base registry's file), the JSON schema files, the manager's
//! `NetworkProtocol` (SNMP included: Azure Stack Hub's hardware monitoring uses SNMPv3 with the
//! BMC credential), and iLO's `ResourceDirectory`.
//!
//! Clients and validators follow these links from the service root, so each answers with a
//! minimal but schema-valid body under the vendor's ids (iDRAC `System.Embedded.1`, iLO and XCC
//! `1`). They hold no state a rotation changes; PATCH and POST on them are 405.

use super::Bmc;
use super::wire::BASE_REGISTRY;
use crate::persona::{Persona, Vendor};
use serde_json::{Value, json};

/// The schemas `JsonSchemas` lists: those of the resources the lab serves.
const SCHEMAS: [&str; 14] = [
    "ServiceRoot",
    "AccountService",
    "ManagerAccount",
    "Role",
    "SessionService",
    "Session",
    "Manager",
    "ManagerNetworkProtocol",
    "ComputerSystem",
    "Chassis",
    "UpdateService",
    "TaskService",
    "EventService",
    "MessageRegistryFile",
];

/// The server model each persona's BMC sits in (the persona's hardware profile).
fn system_model(persona: Persona) -> &'static str {
    match persona {
        Persona::Idrac9 => "PowerEdge R640",
        Persona::Idrac10 => "PowerEdge R770",
        Persona::Ilo5 => "ProLiant DL380 Gen10",
        Persona::Ilo6 => "ProLiant DL380 Gen11",
        Persona::Ilo7 => "ProLiant DL380 Gen12",
        Persona::Xcc1 => "ThinkSystem SR650",
        Persona::Xcc2 => "ThinkSystem SR650 V3",
        Persona::Xcc3 => "ThinkSystem SR650 V4",
        Persona::DmtfGeneric => "Rack Server",
    }
}

fn manufacturer(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Dell => "Dell Inc.",
        Vendor::Hpe => "HPE",
        Vendor::Lenovo => "Lenovo",
        Vendor::Generic => "Generic",
    }
}

fn collection(uri: &str, kind: &str, name: &str, members: Vec<Value>) -> Value {
    json!({"@odata.id": uri, "@odata.type": format!("#{kind}.{kind}"), "Name": name,
           "Members@odata.count": members.len(), "Members": members})
}

impl Bmc {
    /// The computer system's id (and its chassis'): iDRAC names both `System.Embedded.1`.
    pub(super) fn system_id(&self) -> &'static str {
        match self.profile.persona.vendor() {
            Vendor::Dell => "System.Embedded.1",
            Vendor::Hpe | Vendor::Lenovo | Vendor::Generic => "1",
        }
    }

    /// The id of the Base registry's file under `Registries` (iDRAC `BaseMessages`).
    fn base_registry_id(&self) -> &'static str {
        match self.profile.persona.vendor() {
            Vendor::Dell => "BaseMessages",
            Vendor::Hpe | Vendor::Lenovo | Vendor::Generic => "Base",
        }
    }

    fn link(&self, uri: String) -> Value {
        json!({"@odata.id": self.slash(uri)})
    }

    /// The read-only resource at `path` (without a trailing `/`), if the persona serves one.
    pub(super) fn platform_resource(&self, path: &str) -> Option<Value> {
        let system = format!("/redfish/v1/Systems/{}", self.system_id());
        let chassis = format!("/redfish/v1/Chassis/{}", self.system_id());
        let manager = format!("/redfish/v1/Managers/{}", self.profile.manager_id);
        let body = match path {
            "/redfish/v1/Systems" => {
                collection(path, "ComputerSystemCollection", "Computer System Collection", vec![self.link(system)])
            }
            p if p == system => self.computer_system(),
            "/redfish/v1/Chassis" => {
                collection(path, "ChassisCollection", "Chassis Collection", vec![self.link(chassis)])
            }
            p if p == chassis => self.chassis(),
            p if p == format!("{manager}/NetworkProtocol") => self.network_protocol(),
            "/redfish/v1/UpdateService" => {
                json!({"@odata.type": "#UpdateService.v1_11_0.UpdateService", "Id": "UpdateService",
                       "Name": "Update Service", "ServiceEnabled": true, "Status": {"State": "Enabled", "Health": "OK"}})
            }
            "/redfish/v1/TaskService" => {
                json!({"@odata.type": "#TaskService.v1_2_0.TaskService", "Id": "TaskService", "Name": "Task Service",
                       "ServiceEnabled": true, "CompletedTaskOverWritePolicy": "Oldest",
                       "Tasks": self.link("/redfish/v1/TaskService/Tasks".into())})
            }
            "/redfish/v1/TaskService/Tasks" => collection(path, "TaskCollection", "Task Collection", vec![]),
            // Without a `Subscriptions` link: the lab sends no events, and a collection that
            // refused subscriptions would be a deviation no vendor has.
            "/redfish/v1/EventService" => {
                json!({"@odata.type": "#EventService.v1_10_0.EventService", "Id": "EventService",
                       "Name": "Event Service", "ServiceEnabled": false})
            }
            "/redfish/v1/Registries" => {
                let base = self.link(format!("/redfish/v1/Registries/{}", self.base_registry_id()));
                collection(path, "MessageRegistryFileCollection", "Registry File Collection", vec![base])
            }
            p if p == format!("/redfish/v1/Registries/{}", self.base_registry_id()) => self.base_registry_file(),
            "/redfish/v1/JsonSchemas" => {
                let members = SCHEMAS.iter().map(|s| self.link(format!("/redfish/v1/JsonSchemas/{s}"))).collect();
                collection(path, "JsonSchemaFileCollection", "JSON Schema File Collection", members)
            }
            p => {
                let name = p.strip_prefix("/redfish/v1/JsonSchemas/").filter(|s| SCHEMAS.contains(s))?;
                json_schema_file(name)
            }
        };
        Some(self.with_id(body, path))
    }

    /// iLO's `ResourceDirectory`: every resource the service holds with its type, the index
    /// HPE's tools read instead of crawling.
    pub(super) fn resource_directory(&self) -> Value {
        let mut uris = vec![
            "/redfish/v1/Systems".to_owned(),
            format!("/redfish/v1/Systems/{}", self.system_id()),
            "/redfish/v1/Chassis".to_owned(),
            format!("/redfish/v1/Chassis/{}", self.system_id()),
            format!("/redfish/v1/Managers/{}/NetworkProtocol", self.profile.manager_id),
            "/redfish/v1/UpdateService".to_owned(),
            "/redfish/v1/TaskService".to_owned(),
            "/redfish/v1/EventService".to_owned(),
            "/redfish/v1/Registries".to_owned(),
            "/redfish/v1/JsonSchemas".to_owned(),
        ];
        uris.sort();
        let mut instances: Vec<Value> = uris
            .iter()
            .filter_map(|uri| self.platform_resource(uri))
            .map(|r| json!({"@odata.id": r["@odata.id"], "@odata.type": r["@odata.type"]}))
            .collect();
        instances.extend(self.accounts.values().filter(|a| !a.user.is_empty()).map(
            |a| json!({"@odata.id": self.account_uri(a.id), "@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount"}),
        ));
        self.with_id(
            json!({"@odata.type": "#HpeiLOResourceDirectory.v2_0_0.HpeiLOResourceDirectory", "Id": "ResourceDirectory",
                   "Name": "iLO Resource Directory", "Instances": instances}),
            "/redfish/v1/ResourceDirectory",
        )
    }

    /// Puts `@odata.id` first, in the persona's slash form.
    fn with_id(&self, body: Value, path: &str) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("@odata.id".into(), Value::String(self.slash(path.to_owned())));
        if let Value::Object(fields) = body {
            out.extend(fields.into_iter().filter(|(k, _)| k != "@odata.id"));
        }
        Value::Object(out)
    }

    fn computer_system(&self) -> Value {
        let p = &self.profile;
        json!({"@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem", "Id": self.system_id(), "Name": "System",
               "SystemType": "Physical", "Manufacturer": manufacturer(p.persona.vendor()),
               "Model": system_model(p.persona), "PowerState": "On",
               "Status": {"State": "Enabled", "Health": "OK"},
               "Links": {"ManagedBy": [self.link(format!("/redfish/v1/Managers/{}", p.manager_id))],
                         "Chassis": [self.link(format!("/redfish/v1/Chassis/{}", self.system_id()))]}})
    }

    fn chassis(&self) -> Value {
        let p = &self.profile;
        json!({"@odata.type": "#Chassis.v1_23_0.Chassis", "Id": self.system_id(), "Name": "Computer System Chassis",
               "ChassisType": "RackMount", "Manufacturer": manufacturer(p.persona.vendor()),
               "Model": system_model(p.persona), "Status": {"State": "Enabled", "Health": "OK"},
               "Links": {"ComputerSystems": [self.link(format!("/redfish/v1/Systems/{}", self.system_id()))],
                         "ManagedBy": [self.link(format!("/redfish/v1/Managers/{}", p.manager_id))]}})
    }

    /// The manager's protocols. SNMP answers v3 only, authenticated and encrypted with each
    /// account's own credential (`Account`), the setting Azure Stack Hub's monitoring needs.
    fn network_protocol(&self) -> Value {
        let protocol = |enabled: bool, port: u16| json!({"ProtocolEnabled": enabled, "Port": port});
        let mut snmp = protocol(true, 161);
        snmp["EnableSNMPv1"] = json!(false);
        snmp["EnableSNMPv2c"] = json!(false);
        snmp["EnableSNMPv3"] = json!(true);
        snmp["AuthenticationProtocol"] = json!("Account");
        snmp["EncryptionProtocol"] = json!("Account");
        json!({"@odata.type": "#ManagerNetworkProtocol.v1_10_0.ManagerNetworkProtocol", "Id": "NetworkProtocol",
               "Name": "Manager Network Protocol", "HTTP": protocol(true, 80), "HTTPS": protocol(true, 443),
               "IPMI": protocol(true, 623), "SSH": protocol(true, 22), "SNMP": snmp,
               "Status": {"State": "Enabled", "Health": "OK"}})
    }

    fn base_registry_file(&self) -> Value {
        json!({"@odata.type": "#MessageRegistryFile.v1_1_3.MessageRegistryFile", "Id": self.base_registry_id(),
               "Name": "Base Message Registry File", "Languages": ["en"], "Registry": BASE_REGISTRY,
               "Location": [{"Language": "en",
                             "PublicationUri": format!("https://redfish.dmtf.org/registries/{BASE_REGISTRY}.0.json")}]})
    }
}

fn json_schema_file(name: &str) -> Value {
    json!({"@odata.type": "#JsonSchemaFile.v1_1_5.JsonSchemaFile", "Id": name, "Name": format!("{name} Schema File"),
           "Schema": format!("#{name}.{name}"), "Languages": ["en"],
           "Location": [{"Language": "en", "PublicationUri": format!("https://redfish.dmtf.org/schemas/v1/{name}.json")}]})
}
