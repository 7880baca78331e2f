//! The resources every Redfish service has beside accounts and sessions: the version document
//! (`/redfish`), the service root, the OData service document and `$metadata` (DSP0266 requires
//! both), and the manager collection with the one manager (the BMC itself).
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
                // full `iLO 5 v2.55` (HPE's service-root and manager captures).
                let version = p.firmware.rsplit(" v").next().unwrap_or(p.firmware);
                json!({"Hpe": {"Manager": [{"ManagerType": p.manager_model, "ManagerFirmwareVersion": version}],
                                          "Sessions": {"LoginFailureDelay": 0}}})
            }
            Vendor::Lenovo => json!({"Lenovo": {"@odata.type": "#LenovoServiceRoot.v1_0_0.LenovoServiceRoot"}}),
        };
        LabResponse::json(
            200,
            json!({
                "@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_16_0.ServiceRoot", "Id": "RootService",
                "Name": "Root Service", "RedfishVersion": p.redfish_version, "Vendor": p.vendor, "Product": p.product,
                "UUID": "4c4c4544-0000-0000-0000-000000000000",
                "AccountService": {"@odata.id": self.slash("/redfish/v1/AccountService".into())},
                "SessionService": {"@odata.id": self.slash("/redfish/v1/SessionService".into())},
                "Managers": {"@odata.id": self.slash("/redfish/v1/Managers".into())},
                "Links": {"Sessions": {"@odata.id": self.slash("/redfish/v1/SessionService/Sessions".into())}},
                "Oem": oem,
            }),
        )
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
        let full = json!({"@odata.id": format!("/redfish/v1/Managers/{}", p.manager_id), "@odata.type": "#Manager.v1_19_0.Manager", "Name": "Manager", "Id": p.manager_id,
                          "Model": p.manager_model, "FirmwareVersion": p.firmware, "ManagerType": "BMC"});
        // `$select=Model` (iDRAC generation detection) returns just that property.
        if request.query.contains("$select=Model") {
            return LabResponse::json(200, json!({"@odata.id": full["@odata.id"], "Model": full["Model"]}));
        }
        LabResponse::json(200, full)
    }
}
