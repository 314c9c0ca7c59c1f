//! Fixed key material for the `jwt` target. Fuzzing only: these keys protect nothing and are
//! committed so that signed seeds in `corpus/jwt/` stay valid across runs. Generated once with
//! `openssl genpkey` (RSA 2048, EC P-256); the Ed25519 key is derived from a fixed seed in
//! `jwt.rs`.

pub const RSA_PKCS8_BASE64: &str = concat!(
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCwIhq7EqWeqxLENXPnVxbekqTCG0FK2EtZf8+F",
    "xVwESX5AP4DEOszpxORghziguRRBrgnd0mufUkI9o+l+FDs26QHwAj59z9EpDRNS/du9xse8YGIApdYAXRVVIkbt",
    "UJA9Wsnj2LQmlbZHTTYBIFxGYpoYo2Hg/hAQYHI9AExh+zw5JIHJvQOiEMNIqjX72gPFkx/YWEiLxugzjPk4OkoE",
    "7urpsea/pXzyySqnjxucudhyHYblj14sT1gep5qfE2tYWI56iSvaB+AOCC31pdWIGAXYC9s4iJahmaHlE56hY2bB",
    "iH+rKOOH4LSXP/EgpN5zcmTE5z/nLcGh4MAtfr6VAgMBAAECggEAQ9w/9EeQ6/r5dgMqLr2NIB/bvrWFiHKhRVBL",
    "Aj0x4Kz4KYTN9cy52m9zlgVDOhlUxqFpR7+km3Oz9c/LTDo7PkKz7mbO8OY6rdhN07HfEdUea2OvHpTGSMmUSIK2",
    "VQSvLhRmqJR7hEo2Om5zGif/pVakDE4WjfsU8VpXaU1OIIlp3iWElJP3UjRnz2DHa+/jSEIVEblafp2ym32+lFdM",
    "UELvthSepX60T8AeuoRG/nj3FosxkB2lTBJJleiXvBfcJWTnGijmc48wGxs2MVElRLACs2zbYSThygVH/y7lK6mu",
    "hMnEcOmxkfGF4NobbA7UYAeuG5DyXsPCCe/Y3Js6mQKBgQDWhy5kPmnJq9TyquoK7G7S8NLYgxLxtaceDMkvJi4U",
    "B3d64g56/FoXYdIDwtOmkYeO2OFJeFmRHCIEkDPVpR3fgTn6Pdi1ccR8UkZ5vh1PIQFko+hH0xc1KwjPcSz7XD+2",
    "P7TuI1cQ4c7otjrqSiFs4V3y/tR7VKeBxzsERzWvJwKBgQDSLstStczkC6YwaHTE9QZW+JZfV+Hgj0YKVkqCsZxG",
    "Ip89+a8so4Gj6gTF+267rpc7Y6PGPnqrHzoawgkiluOEclns6zxUIlSrTx5Bn/zuPnr85yvM13WHMJ5jKqaJseCm",
    "sC1iVqqPrTyQGRDoCQBOcRaXqMMUOWeaNmcrru154wKBgQDO2vBPtqLY1Dh0eXtNZyeBfLdCEDk/GjJ3VkrTjNQX",
    "eg+qTLk7u4K/UxJnj//3eBInGlc5ObPbqS3gCpAArML+VaPq+KGya23Tlp3gHAI035VxTl7WiuOw37sSE4YVJaFF",
    "gW5bxXXZkHKrj7OFYE+Upkap3TBTb5BJIit095j7NwKBgFo9sRpf6Ap5Xe8mygvOT9yDeryQ1PA/U4kYp4EZlMkg",
    "EFLhou59fSnNTiNa4p4+Rbw/+Y8iQDS8gYv/h0CMnD6/ghCQpyRQYR30KD9w233G4bM35bxbPaC/pSFarIouDxBC",
    "UBoKr8xkSr5rpLCbPMBxGYwf7zH9u5egiAdfYaKVAoGAB22ImvmGFws7VxHx6A1oeOaaMU69Sj5xjaqzEgIsP5wY",
    "H6988aBiPVVB7JrmzAMqRe1gBi2HiBK7hbspRtfqAj+GW0BExp+tqy3BbD3PUrcTIfBHoBbstiYKZJ2LDHpwvIdC",
    "uPqqDQ2O6AiDzQyHTEFhoL7j2CL9CRTdjYUM03k=",
);
pub const RSA_N: &str = concat!(
    "sCIauxKlnqsSxDVz51cW3pKkwhtBSthLWX_PhcVcBEl-QD-AxDrM6cTkYIc4oLkUQa4J3dJrn1JCPaPpfhQ7NukB",
    "8AI-fc_RKQ0TUv3bvcbHvGBiAKXWAF0VVSJG7VCQPVrJ49i0JpW2R002ASBcRmKaGKNh4P4QEGByPQBMYfs8OSSB",
    "yb0DohDDSKo1-9oDxZMf2FhIi8boM4z5ODpKBO7q6bHmv6V88skqp48bnLnYch2G5Y9eLE9YHqeanxNrWFiOeokr",
    "2gfgDggt9aXViBgF2AvbOIiWoZmh5ROeoWNmwYh_qyjjh-C0lz_xIKTec3JkxOc_5y3BoeDALX6-lQ",
);
pub const RSA_E: &str = "AQAB";
pub const P256_PKCS8_BASE64: &str = concat!(
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiSJaqsDLzagI4N/6XvD3Q45Y6E4wyJJo98X0kPWx",
    "1HyhRANCAASFrKXZ59qj1HqaQkpiUs+66F0Df9JL7ba7B112vb5MRIhXONOhzKCGcLhGcx6XeBnZr1L34rA6PRoM",
    "fuyFi1Fe",
);
pub const P256_X: &str = "hayl2efao9R6mkJKYlLPuuhdA3_SS-22uwdddr2-TEQ";
pub const P256_Y: &str = "iFc406HMoIZwuEZzHpd4GdmvUvfisDo9Ggx-7IWLUV4";
