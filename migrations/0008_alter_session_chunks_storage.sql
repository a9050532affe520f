-- Terminal output and file transfers are mostly incompressible (SSH payloads,
-- binaries) and PostgreSQL's default pglz attempt on every 32 KiB chunk cost
-- more than half of the recording throughput. Store the bytes uncompressed,
-- out of line.
alter table session_chunks alter column data set storage external;
