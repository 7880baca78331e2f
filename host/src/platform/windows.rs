//! Windows: DACLs through the Win32 security API, console control events, `cmd.exe`.

use super::Operator;
use std::ffi::c_void;
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::mem::ManuallyDrop;
use std::os::windows::ffi::OsStringExt;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;
use windows_sys::Win32::Foundation::{ERROR_SUCCESS, HANDLE, INVALID_HANDLE_VALUE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, GetSecurityInfo, SE_FILE_OBJECT, SetSecurityInfo,
};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_REVISION, AddAccessAllowedAceEx, CONTAINER_INHERIT_ACE,
    DACL_SECURITY_INFORMATION, EqualSid, GetAce, GetLengthSid, GetTokenInformation, INHERIT_ONLY_ACE, InitializeAcl,
    IsWellKnownSid, LookupAccountSidW, OBJECT_INHERIT_ACE, OWNER_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, SID_NAME_USE, TOKEN_QUERY, TOKEN_USER, TokenUser,
    WinBuiltinAdministratorsSid, WinLocalSystemSid,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_ALL_ACCESS, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE, READ_CONTROL, ReOpenFile, WRITE_DAC,
};
use windows_sys::Win32::System::Console::{CONSOLE_SCREEN_BUFFER_INFO, GetConsoleScreenBufferInfo};
use windows_sys::Win32::System::Diagnostics::Debug::{
    SEM_FAILCRITICALERRORS, SEM_NOGPFAULTERRORBOX, SEM_NOOPENFILEERRORBOX, SetErrorMode,
};
use windows_sys::Win32::System::SystemServices::{ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use windows_sys::Win32::System::WindowsProgramming::GetUserNameW;

/// Opening a file the tool was given to read. std's handles are never inherited and a Windows
/// open does not wait for a writer, so nothing is added.
pub fn for_reading(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// A symbolic link or junction in the last component is opened itself, not followed: the
/// caller's regular-file check then refuses it.
pub fn not_following(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
}

/// Creation gives a file its directory's inherited ACL; [`make_private`] replaces it.
pub fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// Replaces an open file's DACL with one entry, full access for this user, inheriting nothing.
/// Reopens the same file object by handle (`ReOpenFile`), so no path is looked up again.
pub fn make_private(file: &File) -> io::Result<()> {
    let share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    // SAFETY: the handle is open for the life of `file`; the call returns a new handle or INVALID.
    let handle = unsafe { ReOpenFile(file.as_raw_handle(), READ_CONTROL | WRITE_DAC, share, 0) };
    if handle == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh handle this function owns from here on.
    let handle = unsafe { OwnedHandle::from_raw_handle(handle) };
    set_owner_only(handle.as_raw_handle(), 0)
}

/// Creates `dir` and its missing parents; a directory this creates gets an owner-only DACL that
/// files and directories made in it inherit.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let handle = OpenOptions::new()
        .access_mode(READ_CONTROL | WRITE_DAC)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(dir)?;
    set_owner_only(handle.as_raw_handle(), OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE)
}

/// How the opened file is open to others, if it is: an owner other than this user, SYSTEM or
/// Administrators, no DACL at all, or an allowing ACE for anyone else (`open to Everyone,
/// BUILTIN\Users (its access control list)`). Deny and inherit-only entries grant nothing.
pub fn exposure(file: &File, _meta: &Metadata) -> io::Result<Option<String>> {
    let me = user_sid()?;
    let mut owner: PSID = null_mut();
    let mut dacl: *mut ACL = null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: every out pointer is valid; the descriptor they point into is freed by `Local`.
    let rc = unsafe {
        GetSecurityInfo(
            file.as_raw_handle(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            null_mut(),
            &mut dacl,
            null_mut(),
            &mut descriptor,
        )
    };
    if rc != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let _descriptor = Local(descriptor);
    if !trusted(owner, me) {
        return Ok(Some(format!("owned by {}", sid_name(owner))));
    }
    if dacl.is_null() {
        return Ok(Some("open to everyone (it has no access control list)".into()));
    }
    let mut others = Vec::new();
    // SAFETY: a non-null DACL from GetSecurityInfo, alive with the descriptor.
    let count = unsafe { (*dacl).AceCount };
    for index in 0..u32::from(count) {
        let mut ace: *mut c_void = null_mut();
        // SAFETY: index < AceCount; GetAce points `ace` into the DACL.
        if unsafe { GetAce(dacl, index, &mut ace) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: every ACE starts with an ACE_HEADER.
        let header = unsafe { &*(ace as *const ACE_HEADER) };
        let kind = u32::from(header.AceType);
        if u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0 || kind == ACCESS_DENIED_ACE_TYPE {
            continue;
        }
        if kind != ACCESS_ALLOWED_ACE_TYPE {
            others.push(format!("an access entry of type {kind}"));
            continue;
        }
        // SAFETY: an ACCESS_ALLOWED_ACE, by its type; its SID starts at SidStart.
        let allowed = unsafe { &*(ace as *const ACCESS_ALLOWED_ACE) };
        let sid = std::ptr::addr_of!(allowed.SidStart) as PSID;
        if allowed.Mask != 0 && !trusted(sid, me) {
            others.push(sid_name(sid));
        }
    }
    Ok((!others.is_empty()).then(|| format!("open to {} (its access control list)", others.join(", "))))
}

/// The command that makes `path` private (PowerShell syntax).
pub fn privatize_command(path: &Path) -> String {
    format!("icacls \"{}\" /inheritance:r /grant:r \"${{env:USERNAME}}:F\"", path.display())
}

/// [`not_following`] opens a link instead of failing on it: the caller's file-type check refuses it.
pub fn is_link_refusal(_e: &io::Error) -> bool {
    false
}

/// Windows has no FIFOs, devices or sockets among its files (`std` reports them as neither).
pub fn special_kind(_kind: FileType) -> Option<&'static str> {
    None
}

/// The width of standard output's console window, if it is one.
pub fn stdout_width() -> Option<usize> {
    width_of(std::io::stdout().as_raw_handle())
}

/// The width of the console window `file` (`CONOUT$`) shows, if it is one.
pub fn terminal_width(file: &File) -> Option<usize> {
    width_of(file.as_raw_handle())
}

fn width_of(handle: HANDLE) -> Option<usize> {
    // SAFETY: plain data, filled by the call for a console handle.
    let mut info: CONSOLE_SCREEN_BUFFER_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer; a handle that is not a console fails.
    if unsafe { GetConsoleScreenBufferInfo(handle, &mut info) } == 0 {
        return None;
    }
    let width = i32::from(info.srWindow.Right) - i32::from(info.srWindow.Left) + 1;
    usize::try_from(width).ok().filter(|w| *w > 0)
}

/// The console to show a secret on and read Enter from, whatever standard streams were
/// redirected: `CONIN$` and `CONOUT$`.
pub fn open_terminal() -> io::Result<(File, File)> {
    let input = OpenOptions::new().read(true).write(true).open("CONIN$")?;
    let output = OpenOptions::new().read(true).write(true).open("CONOUT$")?;
    Ok((input, output))
}

/// No fault dialog, Windows Error Reporting prompt or missing-file box: each would keep a
/// crashed process, and the secrets in its memory, alive until someone clicks. (Windows has no
/// per-process switch against a user's own debugger or an administrator's LocalDumps policy.)
pub fn harden_process() -> io::Result<()> {
    // SAFETY: SetErrorMode only sets the process's error mode; it cannot fail.
    unsafe { SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX) };
    Ok(())
}

/// Sockets and files are kernel handles on Windows, with no per-process soft limit to raise:
/// nothing to do. The value is what the caller may report as "no limit".
pub fn raise_open_file_limit() -> io::Result<u64> {
    Ok(u64::MAX)
}

/// Who the process runs as: the account name of its token (Windows has no numeric uid).
pub fn operator() -> Operator {
    let mut buf = [0u16; 257];
    let mut len = buf.len() as u32;
    // SAFETY: `len` is the buffer's length in characters; the call writes at most that many.
    let ok = unsafe { GetUserNameW(buf.as_mut_ptr(), &mut len) } != 0;
    let name = ok.then(|| wide(&buf[..(len as usize).saturating_sub(1)]));
    Operator { uid: None, name }
}

/// The shell an escrow command runs in, and how the error names it: `cmd.exe /C`, the command
/// passed as typed (cmd.exe has its own quoting, which Rust's argument quoting would break).
pub fn shell(command: &str) -> (tokio::process::Command, &'static str) {
    let mut shell = tokio::process::Command::new("cmd.exe");
    shell.raw_arg("/D /S /C \"").raw_arg(command).raw_arg("\"");
    (shell, "cmd.exe /D /S /C COMMAND")
}

/// What an escrow command inherits from the environment besides what it is given: what
/// `cmd.exe` and the vault tools (`az`, `op`) need to start and find the user's profile.
pub const SHELL_ENV: &[&str] = &[
    "PATH",
    "PATHEXT",
    "SystemRoot",
    "SystemDrive",
    "ComSpec",
    "windir",
    "USERNAME",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "TEMP",
    "TMP",
    "ProgramData",
    "ProgramFiles",
    "ProgramFiles(x86)",
    "CommonProgramFiles",
];

/// Windows ends the shell itself on drop (`kill_on_drop`); what it started is not in a process
/// group to end with it, so nothing more can be done here without a job object.
pub fn kill_tree(_pid: u32) {}

/// The console's requests to stop: Ctrl-C, Ctrl-Break, and the window being closed.
pub struct StopRequests {
    ctrl_c: tokio::signal::windows::CtrlC,
    ctrl_break: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
}

impl StopRequests {
    /// Starts listening (call from within the runtime).
    pub fn listen() -> Result<StopRequests, String> {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
        Ok(StopRequests {
            ctrl_c: ctrl_c().map_err(|e| format!("cannot watch Ctrl-C: {e}"))?,
            ctrl_break: ctrl_break().map_err(|e| format!("cannot watch Ctrl-Break: {e}"))?,
            close: ctrl_close().map_err(|e| format!("cannot watch the console closing: {e}"))?,
        })
    }

    /// The next request's name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.ctrl_c.recv() => "Ctrl-C",
            _ = self.ctrl_break.recv() => "Ctrl-Break",
            _ = self.close.recv() => "console close",
        }
    }
}

/// Ends the process at once, with no cleanup, as a crash would (the crash tests).
#[cfg(feature = "test-hooks")]
pub fn die_now() -> ! {
    // SAFETY: ends this process; nothing runs after it.
    unsafe { windows_sys::Win32::System::Threading::TerminateProcess(GetCurrentProcess(), 137) };
    unreachable!("TerminateProcess of this process does not return")
}

/// Reads standard input straight from its handle, without std's buffer.
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    let stdin = std::io::stdin();
    let handle = std::os::windows::io::AsHandle::as_handle(&stdin);
    // SAFETY: the handle stays open (it is the process's stdin); ManuallyDrop never closes it.
    let file = ManuallyDrop::new(unsafe { File::from_raw_handle(handle.as_raw_handle()) });
    (&*file).read(buf)
}

/// This process's user SID, read once from its token (kept as u32 words: SIDs are 4-aligned).
fn user_sid() -> io::Result<PSID> {
    static SID: OnceLock<Vec<u32>> = OnceLock::new();
    if let Some(sid) = SID.get() {
        return Ok(sid.as_ptr() as PSID);
    }
    let sid = SID.get_or_init(|| token_user_sid().unwrap_or_default());
    if sid.is_empty() {
        return Err(io::Error::other("cannot read this process's user from its token"));
    }
    Ok(sid.as_ptr() as PSID)
}

fn token_user_sid() -> io::Result<Vec<u32>> {
    let mut token: HANDLE = null_mut();
    // SAFETY: the pseudo-handle of this process; `token` receives a handle owned below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh handle owned from here on.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    let mut len = 0u32;
    // SAFETY: a size query: no buffer, `len` receives the size needed.
    unsafe { GetTokenInformation(token.as_raw_handle(), TokenUser, null_mut(), 0, &mut len) };
    let mut buf = vec![0u64; (len as usize).div_ceil(8)];
    // SAFETY: `buf` holds `len` bytes, 8-aligned for TOKEN_USER.
    if unsafe { GetTokenInformation(token.as_raw_handle(), TokenUser, buf.as_mut_ptr().cast(), len, &mut len) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: filled by the call above as a TOKEN_USER whose SID points into `buf`.
    let sid = unsafe { (*(buf.as_ptr() as *const TOKEN_USER)).User.Sid };
    // SAFETY: a valid SID; GetLengthSid is its size in bytes, a multiple of 4.
    let bytes = unsafe { GetLengthSid(sid) } as usize;
    let mut words = vec![0u32; bytes.div_ceil(4)];
    // SAFETY: both regions are `bytes` long and do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(sid as *const u8, words.as_mut_ptr().cast::<u8>(), bytes) };
    Ok(words)
}

/// This user, SYSTEM or the Administrators group: who may hold a private file.
fn trusted(sid: PSID, me: PSID) -> bool {
    // SAFETY: both are valid SIDs for the duration of the calls.
    unsafe {
        EqualSid(sid, me) != 0
            || IsWellKnownSid(sid, WinLocalSystemSid) != 0
            || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
    }
}

/// Sets a protected DACL of one ACE: full access for this user, with `inherit` flags.
fn set_owner_only(handle: HANDLE, inherit: u32) -> io::Result<()> {
    let me = user_sid()?;
    // SAFETY: a valid SID.
    let sid_len = unsafe { GetLengthSid(me) } as usize;
    let size = size_of::<ACL>() + size_of::<ACCESS_ALLOWED_ACE>() - size_of::<u32>() + sid_len;
    let mut acl = vec![0u32; size.div_ceil(4)];
    let acl_ptr = acl.as_mut_ptr() as *mut ACL;
    // SAFETY: `acl` is `size` bytes, 4-aligned, as InitializeAcl and AddAccessAllowedAceEx need.
    let built = unsafe {
        InitializeAcl(acl_ptr, size as u32, ACL_REVISION) != 0
            && AddAccessAllowedAceEx(acl_ptr, ACL_REVISION, inherit, FILE_ALL_ACCESS, me) != 0
    };
    if !built {
        return Err(io::Error::last_os_error());
    }
    let what = DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION;
    // SAFETY: a handle opened with WRITE_DAC and a well-formed ACL.
    let rc = unsafe { SetSecurityInfo(handle, SE_FILE_OBJECT, what, null_mut(), null_mut(), acl_ptr, null()) };
    if rc != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    Ok(())
}

/// `DOMAIN\name` for a SID, else its `S-1-…` form.
fn sid_name(sid: PSID) -> String {
    let (mut name, mut domain) = ([0u16; 256], [0u16; 256]);
    let (mut name_len, mut domain_len) = (name.len() as u32, domain.len() as u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: the lengths are the buffers' in characters.
    let found = unsafe {
        LookupAccountSidW(
            null(),
            sid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    } != 0;
    if found {
        let (name, domain) = (wide(&name[..name_len as usize]), wide(&domain[..domain_len as usize]));
        return if domain.is_empty() { name } else { format!("{domain}\\{name}") };
    }
    let mut text: *mut u16 = null_mut();
    // SAFETY: `text` receives a LocalAlloc'd string, freed by `Local`.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return "an unknown account".into();
    }
    let _text = Local(text.cast());
    // SAFETY: a NUL-terminated string from the call above.
    let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
    // SAFETY: `len` characters precede the NUL.
    wide(unsafe { std::slice::from_raw_parts(text, len) })
}

fn wide(units: &[u16]) -> String {
    std::ffi::OsString::from_wide(units).to_string_lossy().into_owned()
}

/// Memory the system allocated with LocalAlloc, freed on drop.
struct Local(*mut c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by the system with LocalAlloc, freed once.
            unsafe { LocalFree(self.0) };
        }
    }
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` when another handle holds it.
/// Windows locks are mandatory, so the lock covers one byte far past any content: the record
/// in the file stays readable to the refused command. Released by the system however the
/// process ends.
pub fn try_lock(file: &File) -> io::Result<bool> {
    use windows_sys::Win32::Foundation::ERROR_LOCK_VIOLATION;
    use windows_sys::Win32::Storage::FileSystem::{LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx};
    use windows_sys::Win32::System::IO::OVERLAPPED;
    // SAFETY: plain data; the offset is set below.
    let mut at: OVERLAPPED = unsafe { std::mem::zeroed() };
    at.Anonymous.Anonymous.Offset = u32::MAX;
    at.Anonymous.Anonymous.OffsetHigh = i32::MAX as u32;
    let flags = LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY;
    // SAFETY: a valid handle and OVERLAPPED; the handle is synchronous, so the call completes.
    if unsafe { LockFileEx(file.as_raw_handle(), flags, 0, 1, 0, &mut at) } != 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) { Ok(false) } else { Err(e) }
}

/// This process's CPU time (user and kernel, `GetProcessTimes`) and peak working set in KiB
/// (`K32GetProcessMemoryInfo`): what the benchmarks report.
pub fn resource_usage() -> (std::time::Duration, u64) {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
    use windows_sys::Win32::System::Threading::GetProcessTimes;
    let zero = FILETIME { dwLowDateTime: 0, dwHighDateTime: 0 };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: four valid out pointers; the pseudo-handle of this process.
    unsafe { GetProcessTimes(GetCurrentProcess(), &mut created, &mut exited, &mut kernel, &mut user) };
    let ticks = |t: FILETIME| u64::from(t.dwHighDateTime) << 32 | u64::from(t.dwLowDateTime);
    let cpu = std::time::Duration::from_nanos((ticks(kernel) + ticks(user)) * 100);
    // SAFETY: plain data; `cb` says its size.
    let mut memory: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
    memory.cb = size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
    // SAFETY: a valid out pointer of `cb` bytes.
    unsafe { K32GetProcessMemoryInfo(GetCurrentProcess(), &mut memory, memory.cb) };
    (cpu, memory.PeakWorkingSetSize as u64 / 1024)
}
