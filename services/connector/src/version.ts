/** Reported to the broker at enrolment and on every control link. */
export const CONNECTOR_VERSION = '0.1.0';
