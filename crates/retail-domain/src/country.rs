//! Country names, ISO codes and the coarse regions used to partition silver.

use std::str::FromStr;

use crate::error::Error;

/// A coarse geographic region, used with the invoice month to partition silver.
///
/// Regions follow the UN M49 sub-regions, except that the United Kingdom, which holds
/// about nine in ten rows of the real data, is a region of its own, and that Cyprus counts as
/// Southern Europe (as an EU member) rather than Western Asia.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// The United Kingdom.
    UnitedKingdom,
    /// Western Europe (France, Germany, the Benelux, ...), and `European Community`.
    WesternEurope,
    /// Northern Europe (Ireland, the Nordics, the Baltics) and the Channel Islands.
    NorthernEurope,
    /// Southern Europe (Spain, Portugal, Italy, Greece, Malta, Cyprus, ...).
    SouthernEurope,
    /// Eastern Europe (Poland, the Czech Republic, ...).
    EasternEurope,
    /// The Middle East (the Gulf states, Israel, Lebanon, ...).
    MiddleEast,
    /// Asia and Oceania.
    AsiaPacific,
    /// North, Central and South America and the Caribbean.
    Americas,
    /// Africa.
    Africa,
    /// Unknown or unspecified countries.
    Other,
}

impl Region {
    /// Every region, in declaration order.
    pub const ALL: [Self; 10] = [
        Self::UnitedKingdom,
        Self::WesternEurope,
        Self::NorthernEurope,
        Self::SouthernEurope,
        Self::EasternEurope,
        Self::MiddleEast,
        Self::AsiaPacific,
        Self::Americas,
        Self::Africa,
        Self::Other,
    ];

    /// Returns the stable `snake_case` code stored in silver and used as a partition value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnitedKingdom => "united_kingdom",
            Self::WesternEurope => "western_europe",
            Self::NorthernEurope => "northern_europe",
            Self::SouthernEurope => "southern_europe",
            Self::EasternEurope => "eastern_europe",
            Self::MiddleEast => "middle_east",
            Self::AsiaPacific => "asia_pacific",
            Self::Americas => "americas",
            Self::Africa => "africa",
            Self::Other => "other",
        }
    }

    /// Returns the region whose [`as_str`](Self::as_str) code is `code`, if any.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|region| region.as_str() == code)
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Region {
    type Err = Error;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code).ok_or_else(|| Error::UnknownCode {
            what: "region",
            code: code.to_owned(),
        })
    }
}

/// The standard description of a source country.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountryInfo {
    /// The standard English name (`Ireland` for `EIRE`); for an unknown country, the source
    /// text as given.
    pub name: String,
    /// The ISO 3166-1 alpha-2 code, or `None` where there is none (`Channel Islands`,
    /// `European Community`, `Unspecified`, `West Indies`, unknown names).
    pub code: Option<&'static str>,
    /// The coarse region; [`Region::Other`] for unknown names.
    pub region: Region,
}

/// One known country: the spellings sources use for it, and its standard description.
struct KnownCountry {
    /// The standard English name; always matched as well as the aliases.
    name: &'static str,
    /// Other spellings seen in sources (`EIRE`, `RSA`, `USA`, ...).
    aliases: &'static [&'static str],
    code: Option<&'static str>,
    region: Region,
}

const fn known(
    name: &'static str,
    aliases: &'static [&'static str],
    code: Option<&'static str>,
    region: Region,
) -> KnownCountry {
    KnownCountry {
        name,
        aliases,
        code,
        region,
    }
}

/// Every country the platform knows, most frequent in the real data first (the lookup is a
/// linear scan, so the United Kingdom, nine rows in ten, is found at once).
///
/// It covers the 38 countries of Online Retail I, the extra ones of Online Retail II and
/// common others. Names follow the dataset where it uses a standard English name (`Czech
/// Republic`, `Hong Kong`); `Korea` is the Republic of Korea, as in Online Retail II.
#[rustfmt::skip]
static KNOWN_COUNTRIES: &[KnownCountry] = {
    use Region::*;
    &[
        known("United Kingdom", &["UK", "Great Britain", "GB"], Some("GB"), UnitedKingdom),
        known("Germany", &[], Some("DE"), WesternEurope),
        known("France", &[], Some("FR"), WesternEurope),
        known("Ireland", &["EIRE", "Republic of Ireland"], Some("IE"), NorthernEurope),
        known("Spain", &[], Some("ES"), SouthernEurope),
        known("Netherlands", &["The Netherlands", "Holland"], Some("NL"), WesternEurope),
        known("Belgium", &[], Some("BE"), WesternEurope),
        known("Switzerland", &[], Some("CH"), WesternEurope),
        known("Portugal", &[], Some("PT"), SouthernEurope),
        known("Australia", &[], Some("AU"), AsiaPacific),
        known("Norway", &[], Some("NO"), NorthernEurope),
        known("Italy", &[], Some("IT"), SouthernEurope),
        known("Channel Islands", &[], None, NorthernEurope),
        known("Finland", &[], Some("FI"), NorthernEurope),
        known("Cyprus", &[], Some("CY"), SouthernEurope),
        known("Sweden", &[], Some("SE"), NorthernEurope),
        known("Unspecified", &[], None, Other),
        known("Austria", &[], Some("AT"), WesternEurope),
        known("Denmark", &[], Some("DK"), NorthernEurope),
        known("Japan", &[], Some("JP"), AsiaPacific),
        known("Poland", &[], Some("PL"), EasternEurope),
        known("Israel", &[], Some("IL"), MiddleEast),
        known("United States", &["USA", "US", "United States of America"], Some("US"), Americas),
        known("Hong Kong", &[], Some("HK"), AsiaPacific),
        known("Singapore", &[], Some("SG"), AsiaPacific),
        known("Iceland", &[], Some("IS"), NorthernEurope),
        known("Canada", &[], Some("CA"), Americas),
        known("Greece", &[], Some("GR"), SouthernEurope),
        known("Malta", &[], Some("MT"), SouthernEurope),
        known("United Arab Emirates", &["UAE"], Some("AE"), MiddleEast),
        known("European Community", &[], None, WesternEurope),
        known("South Africa", &["RSA"], Some("ZA"), Africa),
        known("Lebanon", &[], Some("LB"), MiddleEast),
        known("Lithuania", &[], Some("LT"), NorthernEurope),
        known("Brazil", &[], Some("BR"), Americas),
        known("Czech Republic", &["Czechia"], Some("CZ"), EasternEurope),
        known("Bahrain", &[], Some("BH"), MiddleEast),
        known("Saudi Arabia", &[], Some("SA"), MiddleEast),
        // Online Retail II adds these.
        known("Bermuda", &[], Some("BM"), Americas),
        known("South Korea", &["Korea", "Republic of Korea", "Korea, Republic of"], Some("KR"), AsiaPacific),
        known("Nigeria", &[], Some("NG"), Africa),
        known("Thailand", &[], Some("TH"), AsiaPacific),
        known("West Indies", &[], None, Americas),
        // Common others, so that new sources need no code change.
        known("Luxembourg", &[], Some("LU"), WesternEurope),
        known("Liechtenstein", &[], Some("LI"), WesternEurope),
        known("Monaco", &[], Some("MC"), WesternEurope),
        known("Estonia", &[], Some("EE"), NorthernEurope),
        known("Latvia", &[], Some("LV"), NorthernEurope),
        known("Croatia", &[], Some("HR"), SouthernEurope),
        known("Slovenia", &[], Some("SI"), SouthernEurope),
        known("Hungary", &[], Some("HU"), EasternEurope),
        known("Slovakia", &[], Some("SK"), EasternEurope),
        known("Romania", &[], Some("RO"), EasternEurope),
        known("Bulgaria", &[], Some("BG"), EasternEurope),
        known("Ukraine", &[], Some("UA"), EasternEurope),
        known("Russia", &["Russian Federation"], Some("RU"), EasternEurope),
        known("Turkey", &["Turkiye"], Some("TR"), MiddleEast),
        known("Qatar", &[], Some("QA"), MiddleEast),
        known("Kuwait", &[], Some("KW"), MiddleEast),
        known("Oman", &[], Some("OM"), MiddleEast),
        known("Jordan", &[], Some("JO"), MiddleEast),
        known("China", &[], Some("CN"), AsiaPacific),
        known("Taiwan", &[], Some("TW"), AsiaPacific),
        known("India", &[], Some("IN"), AsiaPacific),
        known("Malaysia", &[], Some("MY"), AsiaPacific),
        known("Indonesia", &[], Some("ID"), AsiaPacific),
        known("Philippines", &[], Some("PH"), AsiaPacific),
        known("Vietnam", &["Viet Nam"], Some("VN"), AsiaPacific),
        known("New Zealand", &[], Some("NZ"), AsiaPacific),
        known("Mexico", &[], Some("MX"), Americas),
        known("Argentina", &[], Some("AR"), Americas),
        known("Chile", &[], Some("CL"), Americas),
        known("Colombia", &[], Some("CO"), Americas),
        known("Egypt", &[], Some("EG"), Africa),
        known("Morocco", &[], Some("MA"), Africa),
        known("Kenya", &[], Some("KE"), Africa),
    ]
};

/// Returns the standard name, ISO code and region of a trimmed source country.
///
/// Matching is ASCII case-insensitive and knows the aliases sources use: `EIRE` is Ireland
/// (`IE`), `RSA` is South Africa (`ZA`), `USA` is United States (`US`), `Korea` is South
/// Korea (`KR`). `Channel Islands`, `European Community`, `Unspecified` and `West Indies` are
/// known but have no ISO code. An unknown name keeps its text as the name, with no code and
/// [`Region::Other`].
pub fn lookup_country(trimmed: &str) -> CountryInfo {
    let found = KNOWN_COUNTRIES.iter().find(|country| {
        country.name.eq_ignore_ascii_case(trimmed)
            || country
                .aliases
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(trimmed))
    });
    match found {
        Some(country) => CountryInfo {
            name: country.name.to_owned(),
            code: country.code,
            region: country.region,
        },
        None => CountryInfo {
            name: trimmed.to_owned(),
            code: None,
            region: Region::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 38 countries of Online Retail I, as spelled in the data.
    const ONLINE_RETAIL_I: [&str; 38] = [
        "Australia",
        "Austria",
        "Bahrain",
        "Belgium",
        "Brazil",
        "Canada",
        "Channel Islands",
        "Cyprus",
        "Czech Republic",
        "Denmark",
        "EIRE",
        "European Community",
        "Finland",
        "France",
        "Germany",
        "Greece",
        "Hong Kong",
        "Iceland",
        "Israel",
        "Italy",
        "Japan",
        "Lebanon",
        "Lithuania",
        "Malta",
        "Netherlands",
        "Norway",
        "Poland",
        "Portugal",
        "RSA",
        "Saudi Arabia",
        "Singapore",
        "Spain",
        "Sweden",
        "Switzerland",
        "USA",
        "United Arab Emirates",
        "United Kingdom",
        "Unspecified",
    ];

    const WITHOUT_ISO_CODE: [&str; 4] = [
        "Channel Islands",
        "European Community",
        "Unspecified",
        "West Indies",
    ];

    fn is_known(name: &str) -> bool {
        KNOWN_COUNTRIES.iter().any(|country| {
            country.name.eq_ignore_ascii_case(name)
                || country
                    .aliases
                    .iter()
                    .any(|alias| alias.eq_ignore_ascii_case(name))
        })
    }

    #[test]
    fn knows_every_country_of_the_real_data() {
        let online_retail_ii_extras = ["Bermuda", "Korea", "Nigeria", "Thailand", "West Indies"];
        for name in ONLINE_RETAIL_I.into_iter().chain(online_retail_ii_extras) {
            assert!(is_known(name), "{name}");
            let info = lookup_country(name);
            assert_eq!(
                info.region == Region::Other,
                name == "Unspecified",
                "{name}"
            );
        }
    }

    #[test]
    fn every_real_country_has_an_iso_code_except_the_four_without_one() {
        for name in ONLINE_RETAIL_I {
            let info = lookup_country(name);
            assert_eq!(
                info.code.is_none(),
                WITHOUT_ISO_CODE.contains(&name),
                "{name}"
            );
        }
    }

    #[test]
    fn resolves_the_aliases_of_the_contract() {
        let cases = [
            ("EIRE", "Ireland", "IE", Region::NorthernEurope),
            ("RSA", "South Africa", "ZA", Region::Africa),
            ("USA", "United States", "US", Region::Americas),
            ("Korea", "South Korea", "KR", Region::AsiaPacific),
            (
                "United Kingdom",
                "United Kingdom",
                "GB",
                Region::UnitedKingdom,
            ),
            ("Hong Kong", "Hong Kong", "HK", Region::AsiaPacific),
            (
                "Czech Republic",
                "Czech Republic",
                "CZ",
                Region::EasternEurope,
            ),
            ("Ireland", "Ireland", "IE", Region::NorthernEurope),
            ("United States", "United States", "US", Region::Americas),
            ("South Africa", "South Africa", "ZA", Region::Africa),
        ];
        for (source, name, code, region) in cases {
            assert_eq!(
                lookup_country(source),
                CountryInfo {
                    name: name.to_owned(),
                    code: Some(code),
                    region
                },
                "{source}"
            );
        }
    }

    #[test]
    fn countries_without_an_iso_code_are_known_with_a_region() {
        let cases = [
            ("Channel Islands", Region::NorthernEurope),
            ("European Community", Region::WesternEurope),
            ("Unspecified", Region::Other),
            ("West Indies", Region::Americas),
        ];
        for (source, region) in cases {
            assert_eq!(
                lookup_country(source),
                CountryInfo {
                    name: source.to_owned(),
                    code: None,
                    region
                },
                "{source}"
            );
        }
    }

    #[test]
    fn matching_ignores_case() {
        assert_eq!(lookup_country("eire").name, "Ireland");
        assert_eq!(lookup_country("UNITED KINGDOM").code, Some("GB"));
        assert_eq!(lookup_country("usa").code, Some("US"));
    }

    #[test]
    fn unknown_countries_keep_their_text_with_no_code() {
        assert_eq!(
            lookup_country("Atlantis"),
            CountryInfo {
                name: "Atlantis".to_owned(),
                code: None,
                region: Region::Other
            }
        );
    }

    #[test]
    fn table_has_no_duplicate_spelling_and_well_formed_codes() {
        let mut spellings: Vec<String> = KNOWN_COUNTRIES
            .iter()
            .flat_map(|country| {
                std::iter::once(country.name).chain(country.aliases.iter().copied())
            })
            .map(str::to_ascii_lowercase)
            .collect();
        let total = spellings.len();
        spellings.sort();
        spellings.dedup();
        assert_eq!(spellings.len(), total);

        let mut codes: Vec<&str> = KNOWN_COUNTRIES
            .iter()
            .filter_map(|country| country.code)
            .collect();
        assert!(
            codes
                .iter()
                .all(|code| code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()))
        );
        let with_code = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), with_code);
    }

    #[test]
    fn region_codes_round_trip_through_parse() {
        for region in Region::ALL {
            assert_eq!(Region::parse(region.as_str()), Some(region));
            assert_eq!(region.as_str().parse::<Region>(), Ok(region));
        }
        assert_eq!(Region::UnitedKingdom.as_str(), "united_kingdom");
        assert_eq!(Region::WesternEurope.as_str(), "western_europe");
        assert!("mars".parse::<Region>().is_err());
    }
}
