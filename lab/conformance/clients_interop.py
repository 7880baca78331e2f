"""HPE's python-ilorest-library and OpenStack's sushy against one lab BMC (lab/conformance/clients.sh).

Usage: clients_interop.py ilorest|sushy ADDRESS CA_PEM ADMIN_USER INTROSPECT_URL BMC_NAME [ACCOUNT]
Passwords come from the environment (ADMIN_PASSWORD, NEW_PASSWORD), never the command line.
Each check raises on the first deviation; the exit status says whether the client succeeded.
"""
import json
import os
import sys
import urllib.request


def introspect(url, path, body=None):
    """The lab's introspection endpoint (plain HTTP on loopback): no login, nothing counted."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def ilorest(address, ca_pem, admin, lab, name, account):
    """Login -> password change of `account` -> logout, as HPE's examples do it; no session left."""
    from redfish import RedfishClient

    before = introspect(lab, f"/bmcs/{name}")["sessions"]
    client = RedfishClient(
        base_url=f"https://{address}",
        username=admin,
        password=os.environ["ADMIN_PASSWORD"],
        auth="session",
        ca_cert_data={"ca_certs": ca_pem},
    )
    client.login(auth="session")
    if introspect(lab, f"/bmcs/{name}")["sessions"] != before + 1:
        raise SystemExit(f"{name}: ilorest's login did not open exactly one session")
    location = client.session_location
    if not location or "None" in location:
        raise SystemExit(f"{name}: ilorest kept no usable session location: {location!r}")
    accounts = client.get("/redfish/v1/AccountService/Accounts")
    if accounts.status != 200:
        raise SystemExit(f"{name}: GET Accounts answered {accounts.status}")
    uri = None
    for member in accounts.dict["Members"]:
        entry = client.get(member["@odata.id"])
        if entry.dict.get("UserName") == account:
            uri = member["@odata.id"]
            break
    if uri is None:
        raise SystemExit(f"{name}: no account {account} found through ilorest")
    answer = client.patch(uri, body={"Password": os.environ["NEW_PASSWORD"]})
    ids = [m.get("MessageId", "") for m in answer.dict.get("error", {}).get("@Message.ExtendedInfo", [])]
    if answer.status != 200 or not any(i.endswith("AccountModified") for i in ids):
        raise SystemExit(f"{name}: PATCH {uri} answered {answer.status} {ids}")
    client.logout()
    after = introspect(lab, f"/bmcs/{name}")["sessions"]
    if after != before:
        raise SystemExit(f"{name}: {after - before} session(s) left open after ilorest's logout")
    holds = introspect(lab, f"/bmcs/{name}/holds", {"user": account, "password": os.environ["NEW_PASSWORD"]})
    if not holds["holds"]:
        raise SystemExit(f"{name}: {account} does not hold the password ilorest set")
    print(f"{name}: ilorest login, password change ({ids[0]}), logout; sessions {before} -> {after}")


def sushy_read(address, ca_pem, admin, lab, name, _account):
    """Systems and Managers through sushy, as Ironic's redfish driver reads them."""
    import sushy
    from sushy import auth

    before = introspect(lab, f"/bmcs/{name}")["sessions"]
    session = auth.SessionOrBasicAuth(username=admin, password=os.environ["ADMIN_PASSWORD"])
    root = sushy.Sushy(f"https://{address}/redfish/v1", auth=session, verify=ca_pem)
    systems = root.get_system_collection().get_members()
    managers = root.get_manager_collection().get_members()
    if not systems or not managers:
        raise SystemExit(f"{name}: sushy found {len(systems)} system(s), {len(managers)} manager(s)")
    system = root.get_system(systems[0].path)
    manager = root.get_manager(managers[0].path)
    if not system.identity or not manager.identity:
        raise SystemExit(f"{name}: sushy read no identity")
    session.close()
    after = introspect(lab, f"/bmcs/{name}")["sessions"]
    if after != before:
        raise SystemExit(f"{name}: {after - before} session(s) left open by sushy")
    print(
        f"{name}: sushy read system {system.identity} ({system.manufacturer} {system.model}, power {system.power_state}) "
        f"and manager {manager.identity} ({manager.model}, firmware {manager.firmware_version})"
    )


if __name__ == "__main__":
    tool, address, ca_pem, admin, lab, name = sys.argv[1:7]
    account = sys.argv[7] if len(sys.argv) > 7 else ""
    {"ilorest": ilorest, "sushy": sushy_read}[tool](address, ca_pem, admin, lab, name, account)
