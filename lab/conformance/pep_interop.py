"""pypsrp against the lab's PEP simulator: what an operator's PowerShell session does.

Usage: PEP_USER='AZURESTACK\\CloudAdmin' PEP_CLOUDADMIN_PASSWORD=... PEP_NEW_BMC_PASSWORD=... \
       python pep_interop.py HOST PORT
"""
import os
import sys

from pypsrp.complex_objects import ObjectMeta
from pypsrp.exceptions import AuthenticationError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

host, port = sys.argv[1], int(sys.argv[2])
user, password = os.environ["PEP_USER"], os.environ["PEP_CLOUDADMIN_PASSWORD"]
new_password = os.environ["PEP_NEW_BMC_PASSWORD"]


def connect(pw):
    return WSMan(host, port=port, ssl=False, auth="ntlm", encryption="always",
                 username=user, password=pw, locale="en-US", data_locale="en-US")


checks = []
with RunspacePool(connect(password), configuration_name="PrivilegedEndpoint") as pool:
    pool.exchange_keys()

    ps = PowerShell(pool)
    ps.add_cmdlet("Get-Command").add_parameter("Name", "Set-BmcCredential").add_parameter("Syntax", True)
    syntax = ps.invoke()
    assert not ps.had_errors and "-BypassBMCUpdate" in str(syntax[0]), syntax
    checks.append("Get-Command -Syntax")

    ps = PowerShell(pool)
    ps.add_cmdlet("Set-BmcCredential") \
        .add_parameter("BmcPassword", pool.serialize(new_password, ObjectMeta("SS"))) \
        .add_parameter("BmcUser", "bmcadmin") \
        .add_parameter("BypassBMCUpdate", True)
    output = ps.invoke()
    assert not ps.had_errors, [str(e) for e in ps.streams.error]
    assert ps.streams.verbose, "verbose records arrive"
    checks.append("Set-BmcCredential with a SecureString")

    script = PowerShell(pool)
    script.add_script("Set-BmcCredential -BmcPassword (Read-Host -AsSecureString)")
    script.invoke()
    assert script.had_errors and "no-language mode" in str(script.streams.error[0]), script.streams.error
    checks.append("script text refused (ScriptsNotAllowed)")

    hidden = PowerShell(pool)
    hidden.add_cmdlet("Invoke-Expression").add_parameter("Command", "whoami")
    hidden.invoke()
    assert hidden.had_errors and "is not recognized" in str(hidden.streams.error[0]), hidden.streams.error
    checks.append("non-JEA command refused")

    plain = PowerShell(pool)
    plain.add_cmdlet("Set-BmcCredential").add_parameter("BmcPassword", "plain-text")
    plain.invoke()
    assert plain.had_errors and "SecureString" in str(plain.streams.error[0]), plain.streams.error
    assert "plain-text" not in str(plain.streams.error[0]), "the refusal never echoes the value"
    checks.append("plain-string password refused")

try:
    with RunspacePool(connect("wrong-password"), configuration_name="PrivilegedEndpoint"):
        raise AssertionError("a wrong CloudAdmin password was accepted")
except AuthenticationError:
    checks.append("wrong password refused")

print("pypsrp 0.9.1: " + "; ".join(checks))
