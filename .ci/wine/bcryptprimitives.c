/* For the CI's Wine prefix only, never shipped. Debian 12's Wine 8.0 has no bcryptprimitives.dll,
 * which every Windows 10 and later has, and from whose ProcessPrng Rust's std (and getrandom)
 * draw randomness. This stand-in forwards to RtlGenRandom (advapi32's SystemFunction036), the
 * system generator Wine does implement. Built by .ci/windows.sh with mingw-w64. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
