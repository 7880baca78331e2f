//! Windows: the cache directory opened without following a reparse point, checked on its handle
//! (owner and DACL, the rule for secret files) and held open without delete sharing, so it cannot
//! be renamed, removed or swapped while in use; every file in it opened, renamed and removed
//! relative to that handle (`NtCreateFile` with a root directory, `FILE_OPEN_REPARSE_POINT`).

use super::Open;
use crate::platform;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::{AsRawHandle, FromRawHandle};
use std::path::Path;
use std::ptr::{null, null_mut};
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_CREATE, FILE_NON_DIRECTORY_FILE, FILE_OPEN, FILE_OPEN_REPARSE_POINT, FILE_RENAME_INFORMATION,
    FILE_SYNCHRONOUS_IO_NONALERT, FileRenameInformation, NtCreateFile, NtSetInformationFile,
};
use windows_sys::Win32::Foundation::{OBJ_CASE_INSENSITIVE, RtlNtStatusToDosError, UNICODE_STRING};
use windows_sys::Win32::Storage::FileSystem::{
    DELETE, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT, FILE_DISPOSITION_INFO, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_LIST_DIRECTORY, FILE_READ_ATTRIBUTES,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_TRAVERSE, FileDispositionInfo, READ_CONTROL,
    SYNCHRONIZE, SetFileInformationByHandle,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

const REPARSE_POINT: &str = "it is a reparse point (a symbolic link or junction)";

/// The verified cache directory, held open.
#[derive(Debug)]
pub(super) struct Dir {
    handle: File,
}

/// A fresh file in the directory, not yet under its final name.
pub(super) struct Temporary {
    /// Where the content is written; open with `DELETE` access, for the rename.
    pub(super) file: File,
}

impl Dir {
    /// Creates the directory if missing (an owner-only DACL its files inherit), opens it without
    /// following a reparse point and without sharing delete access (nobody can rename or remove
    /// it while this handle is open), and checks it with [`Dir::recheck`].
    ///
    /// The ancestors are not checked, unlike on Unix: a directory owned by this user whose DACL
    /// admits nobody else can only have been filled by this user (or SYSTEM, Administrators), and
    /// no other user can make a directory owned by this user, wherever a path leads.
    pub(super) fn open(path: &Path) -> Result<Dir, String> {
        platform::create_private_dir(path).map_err(|e| format!("cannot create it: {e}"))?;
        let handle = OpenOptions::new()
            .access_mode(FILE_LIST_DIRECTORY | FILE_TRAVERSE | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
            .open(path)
            .map_err(|e| format!("cannot open it: {e}"))?;
        let dir = Dir { handle };
        dir.recheck()?;
        Ok(dir)
    }

    /// Whether the directory, as held open, is still a directory (not a reparse point) that
    /// [`platform::exposure`] finds private: owned by this user, SYSTEM or Administrators, its
    /// DACL granting no one else anything.
    pub(super) fn recheck(&self) -> Result<(), String> {
        let meta = self.handle.metadata().map_err(|e| format!("cannot read its attributes: {e}"))?;
        if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(REPARSE_POINT.into());
        }
        if !meta.is_dir() {
            return Err("it is not a directory".into());
        }
        match platform::exposure(&self.handle, &meta) {
            Ok(None) => Ok(()),
            Ok(Some(how)) => Err(format!("it is {how}")),
            Err(e) => Err(format!("cannot read its access control list: {e}")),
        }
    }

    /// Opens `name` for reading; a reparse point is opened itself, then refused. Delete sharing
    /// lets another run replace the entry meanwhile.
    pub(super) fn open_file(&self, name: &str) -> Result<File, Open> {
        let file = match self.nt_open(name, FILE_GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, FILE_OPEN) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Open::NotFound),
            Err(e) => return Err(Open::Failed(e)),
        };
        match file.metadata() {
            Ok(meta) if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 => Err(Open::Link(REPARSE_POINT)),
            Ok(_) => Ok(file),
            Err(e) => Err(Open::Failed(e)),
        }
    }

    /// An opened file's size if it may be used: a regular file that [`platform::exposure`] finds
    /// private. Windows has no read-only-for-others middle ground worth keeping here: any access
    /// for anyone else refuses it (`secret` or not). `Ok(Err(reason))` if not.
    pub(super) fn check_file(&self, file: &File, _secret: bool) -> io::Result<Result<u64, String>> {
        let meta = file.metadata()?;
        if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Ok(Err(REPARSE_POINT.into()));
        }
        if !meta.is_file() {
            return Ok(Err("it is not a regular file".into()));
        }
        Ok(match platform::exposure(file, &meta)? {
            Some(how) => Err(format!("it is {how}")),
            None => Ok(meta.len()),
        })
    }

    /// A fresh `.NAME.tmp.RANDOM` file (`FILE_CREATE`: never an existing one), given an owner-only
    /// DACL before anything is written to it.
    pub(super) fn create_temporary(&self, name: &str) -> Result<Temporary, String> {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| format!("the system's random source failed: {e}"))?;
        let tmp = format!(".{name}.tmp.{}", hex::encode(suffix));
        let access = FILE_GENERIC_WRITE | DELETE | READ_CONTROL;
        let share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
        let file = self
            .nt_open(&tmp, access, share, FILE_CREATE)
            .map_err(|e| format!("cannot create a temporary file: {e}"))?;
        let tmp = Temporary { file };
        if let Err(e) = platform::make_private(&tmp.file) {
            self.discard(tmp);
            return Err(format!("cannot make a temporary file private: {e}"));
        }
        Ok(tmp)
    }

    /// Renames the temporary file, by its handle, to `to` in this directory: replacing what is
    /// there, or, without `replace`, only if nothing is (`AlreadyExists` is success: someone else
    /// got there first). The temporary file is gone afterwards either way.
    pub(super) fn commit(&self, tmp: Temporary, to: &str, replace: bool) -> io::Result<()> {
        let result = match self.rename(&tmp.file, to, replace) {
            Err(e) if !replace && e.kind() == io::ErrorKind::AlreadyExists => {
                self.discard(tmp);
                return Ok(());
            }
            other => other,
        };
        if result.is_err() {
            self.discard(tmp);
        }
        result
    }

    /// Deletes a temporary file that will not be committed (through its own handle).
    pub(super) fn discard(&self, tmp: Temporary) {
        let _ = delete_on_close(&tmp.file);
    }

    /// Removes `name`: a reparse point itself, never its target.
    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        let share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
        delete_on_close(&self.nt_open(name, DELETE, share, FILE_OPEN)?)
    }

    /// `NtCreateFile` of `name` relative to the held directory, never following a reparse point,
    /// never a directory, for synchronous I/O.
    fn nt_open(&self, name: &str, access: u32, share: u32, disposition: u32) -> io::Result<File> {
        if name.is_empty() || name.contains(['\\', '/', ':']) || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain file name"));
        }
        let mut wide: Vec<u16> = name.encode_utf16().collect();
        let bytes =
            u16::try_from(wide.len() * 2).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name too long"))?;
        let object = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: wide.as_mut_ptr() };
        let attributes = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: self.handle.as_raw_handle(),
            ObjectName: &object,
            Attributes: OBJ_CASE_INSENSITIVE,
            SecurityDescriptor: null(),
            SecurityQualityOfService: null(),
        };
        // SAFETY: plain data, filled by the call.
        let mut status: IO_STATUS_BLOCK = unsafe { std::mem::zeroed() };
        let mut handle = null_mut();
        let options = FILE_NON_DIRECTORY_FILE | FILE_OPEN_REPARSE_POINT | FILE_SYNCHRONOUS_IO_NONALERT;
        // SAFETY: every pointer is valid for the call (`object` and `wide` outlive it); the root
        // directory is this open directory handle; on success `handle` is a new handle owned below.
        let rc = unsafe {
            NtCreateFile(
                &mut handle,
                access | SYNCHRONIZE,
                &attributes,
                &mut status,
                null(),
                FILE_ATTRIBUTE_NORMAL,
                share,
                disposition,
                options,
                null(),
                0,
            )
        };
        nt_result(rc)?;
        // SAFETY: a fresh handle from NtCreateFile, owned by the File from here on.
        Ok(unsafe { File::from_raw_handle(handle) })
    }

    /// `FileRenameInformation` on the file's handle, to `to` relative to the held directory.
    /// `NtSetInformationFile` rather than `SetFileInformationByHandle`, which may take the name as
    /// a DOS path (relative to the current directory) and then refuses a root directory.
    fn rename(&self, file: &File, to: &str, replace: bool) -> io::Result<()> {
        let wide: Vec<u16> = to.encode_utf16().collect();
        let size = size_of::<FILE_RENAME_INFORMATION>() + wide.len() * 2;
        // 8-aligned and zeroed, as FILE_RENAME_INFORMATION needs.
        let mut buf = vec![0u64; size.div_ceil(8)];
        let info = buf.as_mut_ptr().cast::<FILE_RENAME_INFORMATION>();
        // SAFETY: `buf` holds `size` bytes: the structure and the name after its first character.
        unsafe {
            (*info).Anonymous.ReplaceIfExists = replace;
            (*info).RootDirectory = self.handle.as_raw_handle();
            (*info).FileNameLength = (wide.len() * 2) as u32;
            let name = std::ptr::addr_of_mut!((*info).FileName).cast::<u16>();
            std::ptr::copy_nonoverlapping(wide.as_ptr(), name, wide.len());
        }
        // SAFETY: plain data, filled by the call.
        let mut status: IO_STATUS_BLOCK = unsafe { std::mem::zeroed() };
        // SAFETY: a valid handle with DELETE access, a well-formed FILE_RENAME_INFORMATION of
        // `size` bytes whose root directory is the held directory handle.
        let rc = unsafe {
            NtSetInformationFile(file.as_raw_handle(), &mut status, info.cast(), size as u32, FileRenameInformation)
        };
        nt_result(rc)
    }
}

/// An `NTSTATUS` as an `io::Result`, by way of its Win32 error code.
fn nt_result(rc: i32) -> io::Result<()> {
    if rc < 0 {
        // SAFETY: converts a status code; no preconditions.
        return Err(io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(rc) } as i32));
    }
    Ok(())
}

/// Marks an open file (opened with `DELETE` access) for deletion when its last handle closes.
fn delete_on_close(file: &File) -> io::Result<()> {
    let info = FILE_DISPOSITION_INFO { DeleteFile: true };
    let size = size_of::<FILE_DISPOSITION_INFO>() as u32;
    // SAFETY: a valid handle and a FILE_DISPOSITION_INFO of `size` bytes.
    if unsafe { SetFileInformationByHandle(file.as_raw_handle(), FileDispositionInfo, (&raw const info).cast(), size) }
        == 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
