//! The vendor faces: each speaks one vendor's wire format (its paths, field names, enum
//! spellings, id formats and error body) so that vendor's own SDK works unchanged, and
//! translates every call into engine calls. No face has state of its own: what its
//! vendor's model holds beyond challenges and factors is engine data (`engine::records`).
//!
//! - `twilio/`: Twilio Verify v2 (`/v2/Services…`), see README.md "Twilio Verify".
//! - `acs/`: OneWelcome ACS (`/compat/acs/v1/…`), the native model in ACS names, see
//!   README.md "OneWelcome ACS".
//! - `agilicus/`: Agilicus' ChallengesApi (`/v1/challenges…`,
//!   `/v1/challenge_enrollment/…`), see README.md "Agilicus".
//! - `apiture/`: Apiture auth challenges (`/auth/…`), see README.md "Apiture".

pub mod acs;
pub mod agilicus;
pub mod apiture;
pub mod twilio;
