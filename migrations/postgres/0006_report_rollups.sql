-- Reports read per-dimension rollups instead of one hourly row per combination of
-- every dimension (which a user's IP address made unique for almost every activity):
-- per tenant, tier, period, department and one value of one dimension, a count, a
-- credit sum and the newest instant. Tiers: 'tq' / 'th' the time dimension per quarter
-- hour / UTC hour, 'h' / 'd' every other dimension per UTC hour / UTC day.
-- Dimensions and tiers are defined in crates/core/src/report/rollup.rs. '' stands for
-- "absent" in `value` (key columns must be NOT NULL for the upsert to match).
CREATE TABLE report_rollups (
    tenant_id       TEXT NOT NULL,
    tier            TEXT NOT NULL,
    period_start    BIGINT NOT NULL,
    department_path TEXT COLLATE "C" NOT NULL,
    department_id   TEXT NOT NULL,
    dimension       TEXT NOT NULL,
    value           TEXT NOT NULL,
    count           BIGINT NOT NULL,
    credits_units   BIGINT NOT NULL,
    latest          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, tier, period_start, department_path, department_id, dimension, value)
);

-- Existing data: the hour and day tiers from the former hourly rollups (which still
-- count activities that retention or archiving removed), the quarter-hour tier from the
-- activities at hand.
INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'tq', occurred_at - occurred_at % 900000, department_path, department_id,
       'time', '', COUNT(*), SUM(credits_units), MAX(occurred_at)
FROM activities
GROUP BY tenant_id, occurred_at - occurred_at % 900000, department_path, department_id;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'th', hour_start, department_path, department_id,
       'time', '', SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'h', hour_start, department_path, department_id,
       'operation', operation, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id, operation;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'h', hour_start, department_path, department_id,
       'entity', entity_type, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id, entity_type;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'h', hour_start, department_path, department_id,
       'outcome', outcome, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id, outcome;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'h', hour_start, department_path, department_id,
       'user', user_id, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id, user_id;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'h', hour_start, department_path, department_id,
       'location', location, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id, location;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'h', hour_start, department_path, department_id,
       'auth', auth_method, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id, auth_method;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'h', hour_start, department_path, department_id,
       'ip', ip_address, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start, department_path, department_id, ip_address;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'd', hour_start - hour_start % 86400000, department_path, department_id,
       'operation', operation, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start - hour_start % 86400000, department_path, department_id, operation;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'd', hour_start - hour_start % 86400000, department_path, department_id,
       'entity', entity_type, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start - hour_start % 86400000, department_path, department_id, entity_type;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'd', hour_start - hour_start % 86400000, department_path, department_id,
       'outcome', outcome, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start - hour_start % 86400000, department_path, department_id, outcome;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'd', hour_start - hour_start % 86400000, department_path, department_id,
       'user', user_id, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start - hour_start % 86400000, department_path, department_id, user_id;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'd', hour_start - hour_start % 86400000, department_path, department_id,
       'location', location, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start - hour_start % 86400000, department_path, department_id, location;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'd', hour_start - hour_start % 86400000, department_path, department_id,
       'auth', auth_method, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start - hour_start % 86400000, department_path, department_id, auth_method;

INSERT INTO report_rollups (tenant_id, tier, period_start, department_path, department_id,
                            dimension, value, count, credits_units, latest)
SELECT tenant_id, 'd', hour_start - hour_start % 86400000, department_path, department_id,
       'ip', ip_address, SUM(count), SUM(credits_units), MAX(latest)
FROM rollups_hourly
GROUP BY tenant_id, hour_start - hour_start % 86400000, department_path, department_id, ip_address;

DROP TABLE rollups_hourly;
