//! Offline country → coordinates table (approximate geographic centres) for the admin globe.
//!
//! Covers the countries VPN nodes are commonly hosted in; others get no coordinates rather than a guess.

/// (ISO 3166-1 alpha-2, latitude, longitude), sorted by code for binary search.
const CENTRES: &[(&str, f64, f64)] = &[
    ("AE", 23.42, 53.85),
    ("AL", 41.15, 20.17),
    ("AM", 40.07, 45.04),
    ("AR", -38.42, -63.62),
    ("AT", 47.52, 14.55),
    ("AU", -25.27, 133.78),
    ("AZ", 40.14, 47.58),
    ("BA", 43.92, 17.68),
    ("BD", 23.68, 90.36),
    ("BE", 50.50, 4.47),
    ("BG", 42.73, 25.49),
    ("BR", -14.24, -51.93),
    ("BY", 53.71, 27.95),
    ("CA", 56.13, -106.35),
    ("CH", 46.82, 8.23),
    ("CL", -35.68, -71.54),
    ("CN", 35.86, 104.20),
    ("CO", 4.57, -74.30),
    ("CY", 35.13, 33.43),
    ("CZ", 49.82, 15.47),
    ("DE", 51.17, 10.45),
    ("DK", 56.26, 9.50),
    ("EE", 58.60, 25.01),
    ("EG", 26.82, 30.80),
    ("ES", 40.46, -3.75),
    ("FI", 61.92, 25.75),
    ("FR", 46.23, 2.21),
    ("GB", 55.38, -3.44),
    ("GE", 42.32, 43.36),
    ("GR", 39.07, 21.82),
    ("HK", 22.40, 114.11),
    ("HR", 45.10, 15.20),
    ("HU", 47.16, 19.50),
    ("ID", -0.79, 113.92),
    ("IE", 53.41, -8.24),
    ("IL", 31.05, 34.85),
    ("IN", 20.59, 78.96),
    ("IQ", 33.22, 43.68),
    ("IR", 32.43, 53.69),
    ("IS", 64.96, -19.02),
    ("IT", 41.87, 12.57),
    ("JP", 36.20, 138.25),
    ("KE", -0.02, 37.91),
    ("KG", 41.20, 74.77),
    ("KR", 35.91, 127.77),
    ("KZ", 48.02, 66.92),
    ("LT", 55.17, 23.88),
    ("LU", 49.82, 6.13),
    ("LV", 56.88, 24.60),
    ("MA", 31.79, -7.09),
    ("MD", 47.41, 28.37),
    ("MK", 41.61, 21.75),
    ("MN", 46.86, 103.85),
    ("MT", 35.94, 14.38),
    ("MX", 23.63, -102.55),
    ("MY", 4.21, 101.98),
    ("NG", 9.08, 8.68),
    ("NL", 52.13, 5.29),
    ("NO", 60.47, 8.47),
    ("NZ", -40.90, 174.89),
    ("PE", -9.19, -75.02),
    ("PH", 12.88, 121.77),
    ("PK", 30.38, 69.35),
    ("PL", 51.92, 19.15),
    ("PT", 39.40, -8.22),
    ("RO", 45.94, 24.97),
    ("RS", 44.02, 21.01),
    ("RU", 61.52, 105.32),
    ("SA", 23.89, 45.08),
    ("SE", 60.13, 18.64),
    ("SG", 1.35, 103.82),
    ("SI", 46.15, 14.99),
    ("SK", 48.67, 19.70),
    ("TH", 15.87, 100.99),
    ("TJ", 38.86, 71.28),
    ("TM", 38.97, 59.56),
    ("TR", 38.96, 35.24),
    ("TW", 23.70, 120.96),
    ("UA", 48.38, 31.17),
    ("US", 37.09, -95.71),
    ("UZ", 41.38, 64.59),
    ("VN", 14.06, 108.28),
    ("ZA", -30.56, 22.94),
];

/// The approximate centre of a country, by its two-letter code (any case).
pub(crate) fn centre(country_code: &str) -> Option<(f64, f64)> {
    let code = country_code.to_ascii_uppercase();
    CENTRES
        .binary_search_by(|(c, ..)| (*c).cmp(code.as_str()))
        .ok()
        .map(|i| (CENTRES[i].1, CENTRES[i].2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_in_range() {
        assert!(
            CENTRES.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        for (code, lat, lon) in CENTRES {
            assert_eq!(code.len(), 2);
            assert!(
                (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon),
                "{code}"
            );
        }
    }

    #[test]
    fn looks_up_known_codes_in_any_case() {
        assert_eq!(centre("nl"), Some((52.13, 5.29)));
        assert_eq!(centre("XX"), None);
        assert_eq!(centre(""), None);
    }
}
