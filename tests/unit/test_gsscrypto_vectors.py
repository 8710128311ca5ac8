"""Known-answer tests from the RFCs: n-fold (RFC 3961 A.1), AES-CTS and string-to-key
(RFC 3962 Appendix B), key derivation, encryption and checksums (RFC 8009 Appendix A).

The numbers are transcribed from the RFCs; a wrong CTS swap, n-fold rotation, DK chain or
KDF label shows up here before any interoperability test runs.
"""

from __future__ import annotations

import pytest

from securenfs.gsscrypto.cts import AesCts
from securenfs.gsscrypto.enctypes import PROFILES, Enctype
from securenfs.gsscrypto.kdf import derive_usage_keys, nfold, string_to_key
from securenfs.gsscrypto.usagecrypto import UsageCrypto


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", "").replace("\n", ""))


# RFC 3961 Appendix A.1
NFOLD = [
    (b"012345", 64, "be072631276b1955"),
    (b"password", 56, "78a07b6caf85fa"),
    (b"Rough Consensus, and Running Code", 64, "bb6ed30870b7f0e0"),
    (b"password", 168, "59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e"),
    (
        b"MASSACHVSETTS INSTITVTE OF TECHNOLOGY",
        192,
        "db3b0d8f0b061e603282b308a50841229ad798fab9540c1b",
    ),
    (b"Q", 168, "518a54a215a8452a518a54a215a8452a518a54a215"),
    (b"ba", 168, "fb25d531ae8974499f52fd92ea9857c4ba24cf297e"),
    (b"kerberos", 64, "6b65726265726f73"),
    (b"kerberos", 128, "6b65726265726f737b9b5b2b93132b93"),
    (b"kerberos", 168, "8372c236344e5f1550cd0747e15d62ca7a5a3bcea4"),
    (b"kerberos", 256, "6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4"),
]


@pytest.mark.parametrize(("data", "bits", "expected"), NFOLD)
def test_nfold_matches_rfc3961(data: bytes, bits: int, expected: str) -> None:
    assert nfold(data, bits // 8) == h(expected)


# RFC 3962 Appendix B: AES-128 CBC-CTS, key "chicken teriyaki", zero IV.
CTS_KEY = h("63 68 69 63 6b 65 6e 20 74 65 72 69 79 61 6b 69")
CTS_PLAIN = h(
    "49 20 77 6f 75 6c 64 20 6c 69 6b 65 20 74 68 65 20 47 65 6e 65 72 61 6c 20 47 61 75"
    " 27 73 20 43 68 69 63 6b 65 6e 2c 20 70 6c 65 61 73 65 2c 20 61 6e 64 20 77 6f 6e 74"
    " 6f 6e 20 73 6f 75 70 2e"
)
CTS_VECTORS = [
    (17, "c6 35 35 68 f2 bf 8c b4 d8 a5 80 36 2d a7 ff 7f 97"),
    (
        31,
        (
            "fc 00 78 3e 0e fd b2 c1 d4 45 d4 c8 ef f7 ed 22 97 68 72 68 d6 ec cc c0 c0 7b 25"
            " e2 5e cf e5"
        ),
    ),
    (
        32,
        (
            "39 31 25 23 a7 86 62 d5 be 7f cb cc 98 eb f5 a8 97 68 72 68 d6 ec cc c0 c0 7b 25"
            " e2 5e cf e5 84"
        ),
    ),
    (
        47,
        (
            "97 68 72 68 d6 ec cc c0 c0 7b 25 e2 5e cf e5 84 b3 ff fd 94 0c 16 a1 8c 1b 55 49"
            " d2 f8 38 02 9e 39 31 25 23 a7 86 62 d5 be 7f cb cc 98 eb f5"
        ),
    ),
    (
        48,
        (
            "97 68 72 68 d6 ec cc c0 c0 7b 25 e2 5e cf e5 84 9d ad 8b bb 96 c4 cd c0 3b c1 03"
            " e1 a1 94 bb d8 39 31 25 23 a7 86 62 d5 be 7f cb cc 98 eb f5 a8"
        ),
    ),
    (
        64,
        (
            "97 68 72 68 d6 ec cc c0 c0 7b 25 e2 5e cf e5 84 39 31 25 23 a7 86 62 d5 be 7f cb"
            " cc 98 eb f5 a8 48 07 ef e8 36 ee 89 a5 26 73 0d bc 2f 7b c8 40 9d ad 8b bb 96 c4"
            " cd c0 3b c1 03 e1 a1 94 bb d8"
        ),
    ),
]


@pytest.mark.parametrize(("length", "expected"), CTS_VECTORS)
def test_aes_cts_matches_rfc3962(length: int, expected: str) -> None:
    cts = AesCts(CTS_KEY)
    plain = CTS_PLAIN[:length]
    assert cts.encrypt(plain) == h(expected)
    assert cts.decrypt(h(expected)) == plain


@pytest.mark.parametrize(("length", "expected"), CTS_VECTORS)
def test_aes_cts_encrypts_from_split_pieces(length: int, expected: str) -> None:
    """The data path feeds several buffers (confounder, message, header); every split of
    the input, including ones inside the stolen final block, gives the same ciphertext."""
    cts = AesCts(CTS_KEY)
    plain = CTS_PLAIN[:length]
    for cut in range(length + 1):
        out = bytearray(length + 15)
        cts.encrypt_into((plain[:cut], plain[cut:]), length, memoryview(out))
        assert bytes(out[:length]) == h(expected), cut


# RFC 3962 Appendix B string-to-key: (password, salt, iterations, aes128 key, aes256 key).
S2K_VECTORS = [
    (
        b"password",
        b"ATHENA.MIT.EDUraeburn",
        1,
        "42 26 3c 6e 89 f4 fc 28 b8 df 68 ee 09 79 9f 15",
        (
            "fe 69 7b 52 bc 0d 3c e1 44 32 ba 03 6a 92 e6 5b bb 52 28 09 90 a2 fa 27 88 39 98 d7"
            " 2a f3 01 61"
        ),
    ),
    (
        b"password",
        b"ATHENA.MIT.EDUraeburn",
        2,
        "c6 51 bf 29 e2 30 0a c2 7f a4 69 d6 93 bd da 13",
        (
            "a2 e1 6d 16 b3 60 69 c1 35 d5 e9 d2 e2 5f 89 61 02 68 56 18 b9 59 14 b4 67 c6 76 22"
            " 22 58 24 ff"
        ),
    ),
    (
        b"password",
        b"ATHENA.MIT.EDUraeburn",
        1200,
        "4c 01 cd 46 d6 32 d0 1e 6d be 23 0a 01 ed 64 2a",
        (
            "55 a6 ac 74 0a d1 7b 48 46 94 10 51 e1 e8 b0 a7 54 8d 93 b0 ab 30 a8 bc 3f f1 62 80"
            " 38 2b 8c 2a"
        ),
    ),
    (
        b"password",
        h("1234567878563412"),
        5,
        "e9 b2 3d 52 27 37 47 dd 5c 35 cb 55 be 61 9d 8e",
        (
            "97 a4 e7 86 be 20 d8 1a 38 2d 5e bc 96 d5 90 9c ab cd ad c8 7c a4 8f 57 45 04 15 9f"
            " 16 c3 6e 31"
        ),
    ),
    (
        b"X" * 64,
        b"pass phrase equals block size",
        1200,
        "59 d1 bb 78 9a 82 8b 1a a5 4e f9 c2 88 3f 69 ed",
        (
            "89 ad ee 36 08 db 8b c7 1f 1b fb fe 45 94 86 b0 56 18 b7 0c ba e2 20 92 53 4e 56 c5"
            " 53 ba 4b 34"
        ),
    ),
    (
        b"X" * 65,
        b"pass phrase exceeds block size",
        1200,
        "cb 80 05 dc 5f 90 17 9a 7f 02 10 4c 00 18 75 1d",
        (
            "d7 8c 5c 9c b8 72 a8 c9 da d4 69 7f 0b b5 b2 d2 14 96 c8 2b eb 2c ae da 21 12 fc ee"
            " a0 57 40 1b"
        ),
    ),
    (
        "\U0001d11e".encode(),
        b"EXAMPLE.COMpianist",
        50,
        "f1 49 c1 f2 e1 54 a7 34 52 d4 3e 7f e6 2a 56 e5",
        (
            "4b 6d 98 39 f8 44 06 df 1f 09 cc 16 6d b4 b8 3c 57 18 48 b7 84 a3 d6 bd c3 46 58 9a"
            " 3e 39 3f 9e"
        ),
    ),
]


@pytest.mark.parametrize(("password", "salt", "iterations", "k128", "k256"), S2K_VECTORS)
def test_rfc3962_string_to_key_exercises_dk(
    password: bytes, salt: bytes, iterations: int, k128: str, k256: str
) -> None:
    # The last step is DK(tkey, "kerberos"): the same DK that derives Ke/Ki/Kc.
    aes128 = PROFILES[Enctype.AES128_CTS_HMAC_SHA1_96]
    aes256 = PROFILES[Enctype.AES256_CTS_HMAC_SHA1_96]
    assert string_to_key(aes128, password, salt, iterations) == h(k128)
    assert string_to_key(aes256, password, salt, iterations) == h(k256)


# RFC 8009 Appendix A.
SHA256_BASE = h("37 05 D9 60 80 C1 77 28 A0 E8 00 EA B6 E0 D2 3C")
SHA384_BASE = h(
    "6D 40 4D 37 FA F7 9F 9D F0 D3 35 68 D3 20 66 98 00 EB 48 36 47 2E A8 A0 26 D1 6B 71"
    " 82 46 0C 52"
)
RFC8009_SALT = h(
    "10 DF 9D D7 83 E5 BC 8A CE A1 73 0E 74 35 5F 61 41 54 48 45 4E 41 2E 4D 49 54 2E 45"
    " 44 55 72 61 65 62 75 72 6E"
)


def test_rfc8009_string_to_key() -> None:
    p19 = PROFILES[Enctype.AES128_CTS_HMAC_SHA256_128]
    p20 = PROFILES[Enctype.AES256_CTS_HMAC_SHA384_192]
    assert string_to_key(p19, b"password", RFC8009_SALT, 32768) == h(
        "08 9B CA 48 B1 05 EA 6E A7 7C A5 D2 F3 9D C5 E7"
    )
    assert string_to_key(p20, b"password", RFC8009_SALT, 32768) == h(
        "45 BD 80 6D BF 6A 83 3A 9C FF C1 C9 45 89 A2 22 36 7A 79 BC 21 C4 13 71 89 06 E9 F5"
        " 78 A7 84 67"
    )


def test_rfc8009_key_derivation_usage_2() -> None:
    k19 = derive_usage_keys(PROFILES[Enctype.AES128_CTS_HMAC_SHA256_128], SHA256_BASE, 2)
    assert k19.kc == h("B3 1A 01 8A 48 F5 47 76 F4 03 E9 A3 96 32 5D C3")
    assert k19.ke == h("9B 19 7D D1 E8 C5 60 9D 6E 67 C3 E3 7C 62 C7 2E")
    assert k19.ki == h("9F DA 0E 56 AB 2D 85 E1 56 9A 68 86 96 C2 6A 6C")
    k20 = derive_usage_keys(PROFILES[Enctype.AES256_CTS_HMAC_SHA384_192], SHA384_BASE, 2)
    assert k20.kc == h("EF 57 18 BE 86 CC 84 96 3D 8B BB 50 31 E9 F5 C4 BA 41 F2 8F AF 69 E7 3D")
    assert k20.ke == h(
        "56 AB 22 BE E6 3D 82 D7 BC 52 27 F6 77 3F 8E A7 A5 EB 1C 82 51 60 C3 83 12 98 0C 44"
        " 2E 5C 7E 49"
    )
    assert k20.ki == h("69 B1 65 14 E3 CD 8E 56 B8 20 10 D5 C7 30 12 B6 22 C4 D0 0F FC 23 ED 1F")


# (enctype, base key, plaintext, confounder, ciphertext | HMAC), key usage 2.
ENCRYPT_VECTORS = [
    (
        19,
        SHA256_BASE,
        "",
        "7E 58 95 EA F2 67 24 35 BA D8 17 F5 45 A3 71 48",
        (
            "EF 85 FB 89 0B B8 47 2F 4D AB 20 39 4D CA 78 1D AD 87 7E DA 39 D5 0C 87 0C 0D 5A 0A"
            " 8E 48 C7 18"
        ),
    ),
    (
        19,
        SHA256_BASE,
        "00 01 02 03 04 05",
        "7B CA 28 5E 2F D4 13 0F B5 5B 1A 5C 83 BC 5B 24",
        (
            "84 D7 F3 07 54 ED 98 7B AB 0B F3 50 6B EB 09 CF B5 54 02 CE F7 E6 87 7C E9 9E 24 7E"
            " 52 D1 6E D4 42 1D FD F8 97 6C"
        ),
    ),
    (
        19,
        SHA256_BASE,
        "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
        "56 AB 21 71 3F F6 2C 0A 14 57 20 0F 6F A9 94 8F",
        (
            "35 17 D6 40 F5 0D DC 8A D3 62 87 22 B3 56 9D 2A E0 74 93 FA 82 63 25 40 80 EA 65 C1"
            " 00 8E 8F C2 95 FB 48 52 E7 D8 3E 1E 7C 48 C3 7E EB E6 B0 D3"
        ),
    ),
    (
        19,
        SHA256_BASE,
        "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 11 12 13 14",
        "A7 A4 E2 9A 47 28 CE 10 66 4F B6 4E 49 AD 3F AC",
        (
            "72 0F 73 B1 8D 98 59 CD 6C CB 43 46 11 5C D3 36 C7 0F 58 ED C0 C4 43 7C 55 73 54 4C"
            " 31 C8 13 BC E1 E6 D0 72 C1 86 B3 9A 41 3C 2F 92 CA 9B 83 34 A2 87 FF CB FC"
        ),
    ),
    (
        20,
        SHA384_BASE,
        "",
        "F7 64 E9 FA 15 C2 76 47 8B 2C 7D 0C 4E 5F 58 E4",
        (
            "41 F5 3F A5 BF E7 02 6D 91 FA F9 BE 95 91 95 A0 58 70 72 73 A9 6A 40 F0 A0 19 60 62"
            " 1A C6 12 74 8B 9B BF BE 7E B4 CE 3C"
        ),
    ),
    (
        20,
        SHA384_BASE,
        "00 01 02 03 04 05",
        "B8 0D 32 51 C1 F6 47 14 94 25 6F FE 71 2D 0B 9A",
        (
            "4E D7 B3 7C 2B CA C8 F7 4F 23 C1 CF 07 E6 2B C7 B7 5F B3 F6 37 B9 F5 59 C7 F6 64 F6"
            " 9E AB 7B 60 92 23 75 26 EA 0D 1F 61 CB 20 D6 9D 10 F2"
        ),
    ),
    (
        20,
        SHA384_BASE,
        "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
        "53 BF 8A 0D 10 52 65 D4 E2 76 42 86 24 CE 5E 63",
        (
            "BC 47 FF EC 79 98 EB 91 E8 11 5C F8 D1 9D AC 4B BB E2 E1 63 E8 7D D3 7F 49 BE CA 92"
            " 02 77 64 F6 8C F5 1F 14 D7 98 C2 27 3F 35 DF 57 4D 1F 93 2E 40 C4 FF 25 5B 36 A2 66"
        ),
    ),
    (
        20,
        SHA384_BASE,
        "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 11 12 13 14",
        "76 3E 65 36 7E 86 4F 02 F5 51 53 C7 E3 B5 8A F1",
        (
            "40 01 3E 2D F5 8E 87 51 95 7D 28 78 BC D2 D6 FE 10 1C CF D5 56 CB 1E AE 79 DB 3C 3E"
            " E8 64 29 F2 B2 A6 02 AC 86 FE F6 EC B6 47 D6 29 5F AE 07 7A 1F EB 51 75 08 D2 C1 6B"
            " 41 92 E0 1F 62"
        ),
    ),
]


@pytest.mark.parametrize(("enctype", "base", "plain", "conf", "expected"), ENCRYPT_VECTORS)
def test_rfc8009_encryption(
    enctype: int, base: bytes, plain: str, conf: str, expected: str
) -> None:
    uc = UsageCrypto(PROFILES[enctype], base, 2)
    assert uc.encrypt(h(plain), confounder=h(conf)) == h(expected)
    assert uc.decrypt(h(expected)) == h(plain)


@pytest.mark.parametrize(("enctype", "base", "plain", "conf", "expected"), ENCRYPT_VECTORS)
def test_rfc8009_decryption_rejects_any_flipped_bit(
    enctype: int, base: bytes, plain: str, conf: str, expected: str
) -> None:
    from securenfs.gsscrypto import BadToken

    uc = UsageCrypto(PROFILES[enctype], base, 2)
    ct = h(expected)
    for i in range(len(ct)):
        bad = bytearray(ct)
        bad[i] ^= 0x01
        with pytest.raises(BadToken):
            uc.decrypt(bytes(bad))


def test_rfc8009_checksums() -> None:
    data = h("00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 11 12 13 14")
    uc19 = UsageCrypto(PROFILES[Enctype.AES128_CTS_HMAC_SHA256_128], SHA256_BASE, 2)
    assert uc19.checksum((data,)) == h("D7 83 67 18 66 43 D6 7B 41 1C BA 91 39 FC 1D EE")
    uc20 = UsageCrypto(PROFILES[Enctype.AES256_CTS_HMAC_SHA384_192], SHA384_BASE, 2)
    assert uc20.checksum((data[:10], data[10:])) == h(
        "45 EE 79 15 67 EE FC A3 7F 4A C1 E0 22 2D E8 0D 43 C3 BF A0 66 99 67 2A"
    )
