// The release this build reports on /service/version and `mdserver --version`.
export const VERSION = '1.0.0';
export const RELEASE_DATE = '2026-11-22';
