//! The resources every Redfish service has beside accounts and sessions: the version document
//! (`/redfish`), the service root, the OData service document and `$metadata` (DSP0266 requires
//! both), and the manager collection with the one manager (the BMC itself). The resources the
//! root links beyond these are `platform`'s.
//!
//! Clients read these to find their way (links from the service root) and to tell vendors and
//! generations apart (`Vendor`, `Product`, the service root's `Oem`, the manager's `Model` and
//! `FirmwareVersion`), so the values come from the persona's hardware profile.

use super::Bmc;
use super::wire::{LabRequest, LabResponse};
use crate::persona::Vendor;
use serde_json::{Value, json};

/// `GET /redfish`: the protocol versions the service speaks.
pub(super) fn versions() -> LabResponse {
    LabResponse::json(200, json!({"v1": "/redfish/v1/"}))
}

/// A minimal OData CSDL document naming the entity container (enough for clients that read it).
pub(super) fn metadata_document() -> LabResponse {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ServiceRoot_v1.xml">
    <edmx:Include Namespace="ServiceRoot"/>
    <edmx:Include Namespace="ServiceRoot.v1_16_0"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/AccountService_v1.xml">
    <edmx:Include Namespace="AccountService"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ManagerAccount_v1.xml">
    <edmx:Include Namespace="ManagerAccount"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/SessionService_v1.xml">
    <edmx:Include Namespace="SessionService"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Session_v1.xml">
    <edmx:Include Namespace="Session"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Role_v1.xml">
    <edmx:Include Namespace="Role"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/RoleCollection_v1.xml">
    <edmx:Include Namespace="RoleCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ManagerAccountCollection_v1.xml">
    <edmx:Include Namespace="ManagerAccountCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/SessionCollection_v1.xml">
    <edmx:Include Namespace="SessionCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Manager_v1.xml">
    <edmx:Include Namespace="Manager"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ManagerCollection_v1.xml">
    <edmx:Include Namespace="ManagerCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ManagerNetworkProtocol_v1.xml">
    <edmx:Include Namespace="ManagerNetworkProtocol"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ComputerSystem_v1.xml">
    <edmx:Include Namespace="ComputerSystem"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ComputerSystemCollection_v1.xml">
    <edmx:Include Namespace="ComputerSystemCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Chassis_v1.xml">
    <edmx:Include Namespace="Chassis"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ChassisCollection_v1.xml">
    <edmx:Include Namespace="ChassisCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/UpdateService_v1.xml">
    <edmx:Include Namespace="UpdateService"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/TaskService_v1.xml">
    <edmx:Include Namespace="TaskService"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/TaskCollection_v1.xml">
    <edmx:Include Namespace="TaskCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/EventService_v1.xml">
    <edmx:Include Namespace="EventService"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/MessageRegistryFile_v1.xml">
    <edmx:Include Namespace="MessageRegistryFile"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/MessageRegistryFileCollection_v1.xml">
    <edmx:Include Namespace="MessageRegistryFileCollection"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/JsonSchemaFile_v1.xml">
    <edmx:Include Namespace="JsonSchemaFile"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/JsonSchemaFileCollection_v1.xml">
    <edmx:Include Namespace="JsonSchemaFileCollection"/>
  </edmx:Reference>
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="ServiceRoot.v1_16_0.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"#;
    let mut response = LabResponse::json(200, Value::Null);
    response.text = Some(("application/xml;charset=utf-8", xml.to_owned()));
    response
}

/// The OData service document (`/redfish/v1/odata`): the top-level singletons.
pub(super) fn odata_service_document() -> LabResponse {
    let singleton = |name: &str, url: &str| json!({"name": name, "kind": "Singleton", "url": url});
    LabResponse::json(
        200,
        json!({
            "@odata.context": "/redfish/v1/$metadata",
            "value": [
                singleton("Service", "/redfish/v1/"),
                singleton("AccountService", "/redfish/v1/AccountService"),
                singleton("SessionService", "/redfish/v1/SessionService"),
                singleton("Sessions", "/redfish/v1/SessionService/Sessions"),
                singleton("Managers", "/redfish/v1/Managers"),
                singleton("Systems", "/redfish/v1/Systems"),
                singleton("Chassis", "/redfish/v1/Chassis"),
                singleton("UpdateService", "/redfish/v1/UpdateService"),
                singleton("Tasks", "/redfish/v1/TaskService"),
                singleton("EventService", "/redfish/v1/EventService"),
                singleton("Registries", "/redfish/v1/Registries"),
                singleton("JsonSchemas", "/redfish/v1/JsonSchemas"),
            ]
        }),
    )
}

impl Bmc {
    /// `GET /redfish/v1`: the service root, with the vendor's `Oem` block.
    pub(super) fn service_root(&self) -> LabResponse {
        let p = &self.profile;
        let oem = match p.persona.vendor() {
            Vendor::Dell => {
                json!({"Dell": {"@odata.type": "#DellServiceRoot.v1_0_0.DellServiceRoot", "ManagerMACAddress": "d0:94:66:00:00:01"}})
            }
            Vendor::Hpe => {
                // The root carries the bare version (`2.55`); the Manager's FirmwareVersion the
                // full `iLO 5 v2.55` (HPE's service-root and manager captures), on iLO 7
                // `1.12.00 Mar 28 2025` beside the root's `1.12.00` (HPE, "Adapting from iLO 6").
                let full = p.firmware.rsplit(" v").next().unwrap_or(p.firmware);
                let version = full.split_whitespace().next().unwrap_or(full);
                json!({"Hpe": {"Manager": [{"ManagerType": p.manager_model, "ManagerFirmwareVersion": version}],
                               "Links": {"ResourceDirectory": {"@odata.id": self.slash("/redfish/v1/ResourceDirectory".into())}},
                               "Sessions": {"LoginFailureDelay": 0}}})
            }
            Vendor::Lenovo => json!({"Lenovo": {"@odata.type": "#LenovoServiceRoot.v1_0_0.LenovoServiceRoot"}}),
            Vendor::Generic => Value::Null,
        };
        // iDRAC names its root without the trailing slash; iLO and XCC with it.
        let id = if p.persona.vendor() == Vendor::Dell { "/redfish/v1" } else { "/redfish/v1/" };
        let link = |uri: &str| json!({"@odata.id": self.slash(uri.to_owned())});
        let mut root = json!({
                "@odata.id": id, "@odata.type": "#ServiceRoot.v1_16_0.ServiceRoot", "Id": "RootService",
                "Name": "Root Service", "RedfishVersion": p.redfish_version, "Vendor": p.vendor, "Product": p.product,
                "UUID": "4c4c4544-0000-0000-0000-000000000000",
                "AccountService": link("/redfish/v1/AccountService"),
                "SessionService": link("/redfish/v1/SessionService"),
                "Managers": link("/redfish/v1/Managers"),
                "Systems": link("/redfish/v1/Systems"),
                "Chassis": link("/redfish/v1/Chassis"),
                "UpdateService": link("/redfish/v1/UpdateService"),
                "Tasks": link("/redfish/v1/TaskService"),
                "EventService": link("/redfish/v1/EventService"),
                "Registries": link("/redfish/v1/Registries"),
                "JsonSchemas": link("/redfish/v1/JsonSchemas"),
                "Links": {"Sessions": link("/redfish/v1/SessionService/Sessions")},
                "Oem": oem,
        });
        // A service without vendor extensions has no `Oem` at all (the standard's own roots).
        if let (true, Some(fields)) = (oem.is_null(), root.as_object_mut()) {
            fields.remove("Oem");
        }
        LabResponse::json(200, root)
    }

    /// `GET /redfish/v1/Managers`: one member, the BMC.
    pub(super) fn manager_collection(&self) -> LabResponse {
        LabResponse::json(
            200,
            json!({"@odata.id": "/redfish/v1/Managers", "@odata.type": "#ManagerCollection.ManagerCollection", "Name": "Manager Collection", "Members@odata.count": 1, "Members": [{"@odata.id": self.slash(format!("/redfish/v1/Managers/{}", self.profile.manager_id))}]}),
        )
    }

    /// The BMC's manager resource.
    pub(super) fn manager(&self, request: &LabRequest) -> LabResponse {
        let p = &self.profile;
        let uri = format!("/redfish/v1/Managers/{}", p.manager_id);
        let link = |uri: String| json!({"@odata.id": self.slash(uri)});
        let full = json!({"@odata.id": uri, "@odata.type": "#Manager.v1_19_0.Manager", "Name": "Manager", "Id": p.manager_id,
                          "Model": p.manager_model, "FirmwareVersion": p.firmware, "ManagerType": "BMC",
                          "NetworkProtocol": link(format!("{uri}/NetworkProtocol")),
                          "Links": {"ManagerForServers": [link(format!("/redfish/v1/Systems/{}", self.system_id()))],
                                    "ManagerForChassis": [link(format!("/redfish/v1/Chassis/{}", self.system_id()))]}});
        // `$select=Model` (iDRAC generation detection) returns just that property.
        if request.query.contains("$select=Model") {
            return LabResponse::json(200, json!({"@odata.id": full["@odata.id"], "Model": full["Model"]}));
        }
        LabResponse::json(200, full)
    }
}
