"""Kerberos encryption type numbers and how much we trust them.

Numbers are the IANA "Kerberos Encryption Type Numbers" registry (RFC 3961 §8, RFC 3962,
RFC 4757, RFC 6803, RFC 8009).
"""

from __future__ import annotations

import enum


class EncType(enum.IntEnum):
    DES_CBC_CRC = 1
    DES_CBC_MD4 = 2
    DES_CBC_MD5 = 3
    DES3_CBC_MD5 = 5
    DES3_CBC_SHA1_OLD = 7
    DES3_CBC_SHA1 = 16
    AES128_CTS_HMAC_SHA1_96 = 17
    AES256_CTS_HMAC_SHA1_96 = 18
    AES128_CTS_HMAC_SHA256_128 = 19
    AES256_CTS_HMAC_SHA384_192 = 20
    RC4_HMAC = 23
    RC4_HMAC_EXP = 24
    CAMELLIA128_CTS_CMAC = 25
    CAMELLIA256_CTS_CMAC = 26


class Strength(enum.Enum):
    """How an enctype should be judged on a server in 2026."""

    DES = "des"  # single DES: broken, removed from MIT krb5 1.18
    WEAK = "weak"  # 3DES and RC4: deprecated (RFC 8429); AD stops issuing RC4 tickets (KB5073381)
    STRONG = "strong"  # AES (RFC 3962, RFC 8009) and Camellia (RFC 6803)
    UNKNOWN = "unknown"


_NAMES: dict[int, str] = {
    1: "des-cbc-crc",
    2: "des-cbc-md4",
    3: "des-cbc-md5",
    5: "des3-cbc-md5",
    7: "des3-cbc-sha1-old",
    16: "des3-cbc-sha1",
    17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    23: "arcfour-hmac",
    24: "arcfour-hmac-exp",
    25: "camellia128-cts-cmac",
    26: "camellia256-cts-cmac",
}

# Names and aliases accepted by MIT krb5.conf (krb5.conf(5) "Encryption types").
_ALIASES: dict[str, tuple[int, ...]] = {
    "des": (1, 2, 3),
    "des3": (16,),
    "aes": (17, 18, 19, 20),
    "rc4": (23,),
    "camellia": (25, 26),
    "des3-hmac-sha1": (16,),
    "des3-cbc-sha1-kd": (16,),
    "rc4-hmac": (23,),
    "arcfour-hmac-md5": (23,),
    "rc4-hmac-exp": (24,),
    "arcfour-hmac-exp": (24,),
    "aes128-cts": (17,),
    "aes256-cts": (18,),
    "aes128-sha1": (17,),
    "aes256-sha1": (18,),
    "aes128-sha2": (19,),
    "aes256-sha2": (20,),
    "camellia128-cts": (25,),
    "camellia256-cts": (26,),
    "default": (18, 17, 20, 19, 16, 23, 26, 25),
}

AES = frozenset({17, 18, 19, 20})


def enctype_name(enctype: int) -> str:
    return _NAMES.get(enctype, f"enctype-{enctype}")


def strength(enctype: int) -> Strength:
    if enctype in (1, 2, 3):
        return Strength.DES
    if enctype in (5, 7, 16, 23, 24):
        return Strength.WEAK
    if enctype in AES or enctype in (25, 26):
        return Strength.STRONG
    return Strength.UNKNOWN


def parse_enctype_list(text: str) -> set[int]:
    """Enctypes named by a krb5.conf list such as ``aes256-cts -rc4 des3``.

    Follows krb5.conf(5): names and family aliases, separated by spaces or commas; a leading
    ``-`` removes a type.  Unknown names are ignored as MIT does.
    """
    result: set[int] = set()
    for word in text.replace(",", " ").split():
        remove = word.startswith("-")
        word = word.lstrip("+-").lower()
        types: tuple[int, ...] = ()
        if word in _ALIASES:
            types = _ALIASES[word]
        else:
            for num, name in _NAMES.items():
                if name == word:
                    types = (num,)
                    break
            else:
                if word.isdigit():
                    types = (int(word),)
        if remove:
            result.difference_update(types)
        else:
            result.update(types)
    return result
