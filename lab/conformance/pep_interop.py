"""pypsrp against the lab's PEP simulator: what an operator's PowerShell session does, once with
raw NTLM (auth="ntlm") and once with NTLM inside SPNEGO (auth="negotiate", what Windows'
New-PSSession sends; pyspnego signs and checks the mechListMIC and resets RC4 after it).

Usage: PEP_USER='AZURESTACK\\CloudAdmin' PEP_CLOUDADMIN_PASSWORD=... PEP_NEW_BMC_PASSWORD=... \
       python pep_interop.py HOST PORT
"""
import os
import sys

from pypsrp.complex_objects import ObjectMeta, PSCredential, RunspacePoolState
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

host, port = sys.argv[1], int(sys.argv[2])
user, password = os.environ["PEP_USER"], os.environ["PEP_CLOUDADMIN_PASSWORD"]
new_password = os.environ["PEP_NEW_BMC_PASSWORD"]


def connect(pw, auth="ntlm"):
    return WSMan(host, port=port, ssl=False, auth=auth, encryption="always",
                 username=user, password=pw, locale="en-US", data_locale="en-US")


checks = []
with RunspacePool(connect(password, "negotiate"), configuration_name="PrivilegedEndpoint") as pool:
    # SPNEGO: the context is only usable if both mechListMICs verified and both sides reset RC4.
    pool.exchange_keys()
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-Command").add_parameter("Name", "Set-BmcCredential").add_parameter("Syntax", True)
    syntax = ps.invoke()
    assert not ps.had_errors and "-BypassBMCUpdate" in str(syntax[0]), syntax
    checks.append("SPNEGO (auth=negotiate) with mechListMIC")

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
    # PowerShell's binder echoes the value it could not convert: why a client must send <SS>.
    assert plain.had_errors and str(plain.streams.error[0]) == (
        "Cannot process argument transformation on parameter 'BmcPassword'. Cannot convert the \"plain-text\" "
        "value of type \"System.String\" to type \"System.Security.SecureString\"."), str(plain.streams.error[0])
    checks.append("plain-string password refused, echoing it")

    ps = PowerShell(pool)
    ps.add_cmdlet("Close-PrivilegedEndpoint").add_parameter("TranscriptsPathDestination", "\\\\hlh\\t") \
        .add_parameter("Credential", PSCredential(username="HLH\\ops", password="Share-Pw-9"))
    ps.invoke()
    assert not ps.had_errors, [str(e) for e in ps.streams.error]
    after = PowerShell(pool)
    after.add_cmdlet("Get-Command")
    try:
        after.invoke()
        raise AssertionError("a command ran after Close-PrivilegedEndpoint")
    except WSManFaultError as fault:
        assert "shell was not found" in str(fault), str(fault)
    checks.append("the pool is closed after Close-PrivilegedEndpoint")
    # The shell is gone: the with-block's Delete would get the same fault, so mark the pool
    # closed, as a caller of a real PEP does after Close-PrivilegedEndpoint.
    pool.state = RunspacePoolState.CLOSED

try:
    with RunspacePool(connect("wrong-password", "negotiate"), configuration_name="PrivilegedEndpoint"):
        raise AssertionError("a wrong CloudAdmin password was accepted over SPNEGO")
except AuthenticationError:
    checks.append("wrong password refused (SPNEGO)")

try:
    with RunspacePool(connect("wrong-password"), configuration_name="PrivilegedEndpoint"):
        raise AssertionError("a wrong CloudAdmin password was accepted")
except AuthenticationError:
    checks.append("wrong password refused")

print("pypsrp 0.9.1: " + "; ".join(checks))
