-- A run journal, written by tests/data/make_journal_fixture.py;
-- see tests/data/README.md for the code that wrote it.
BEGIN TRANSACTION;
CREATE TABLE items (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    inputs TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    output TEXT,
    error TEXT,
    error_code INTEGER,
    reconciled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step_id, idx)
);
INSERT INTO "items" VALUES('fixture-done','send',0,'succeeded','{"from":"+15005550006","to":"+15005550110","body":"Notice #0"}',1,1.79599717328450250624e+09,'{"body":"Notice #0","from":"+15005550006","to":"+15005550110","status":"queued","sid":"SMf29eb35588aca9128307b9cb9a7ce3af","account_sid":"AC74d80968729b882663402c64aa400ae2","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:06:13.000Z","date_sent":null,"date_updated":"2026-11-30T00:06:13.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMf29eb35588aca9128307b9cb9a7ce3af.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMf29eb35588aca9128307b9cb9a7ce3af/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',0,'succeeded','{"from":"+15005550006","to":"+15005550111","body":"Notice #0"}',1,1.79599717330433821674e+09,'{"body":"Notice #0","from":"+15005550006","to":"+15005550111","status":"queued","sid":"SMb7348fccb024f100dffb9fe66ac5ea35","account_sid":"AC74d80968729b882663402c64aa400ae2","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:06:13.000Z","date_sent":null,"date_updated":"2026-11-30T00:06:13.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMb7348fccb024f100dffb9fe66ac5ea35.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMb7348fccb024f100dffb9fe66ac5ea35/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',1,'succeeded','{"from":"+15005550006","to":"+15005550112","body":"Notice #1"}',1,1.79599717331212568286e+09,'{"body":"Notice #1","from":"+15005550006","to":"+15005550112","status":"queued","sid":"SMd666797495b7878d78c12988c2a3e054","account_sid":"AC74d80968729b882663402c64aa400ae2","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:06:13.000Z","date_sent":null,"date_updated":"2026-11-30T00:06:13.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMd666797495b7878d78c12988c2a3e054.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMd666797495b7878d78c12988c2a3e054/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',2,'started','{"from":"+15005550006","to":"+15005550113","body":"Notice #2"}',1,1.79599717332014942165e+09,NULL,NULL,NULL,0);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    inputs TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    host TEXT,
    started REAL NOT NULL,
    finished REAL,
    outputs TEXT,
    error TEXT
);
INSERT INTO "runs" VALUES('fixture-done','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550110"]}','succeeded',12986,'journal-fixture.invalid',1.7959971732807807922e+09,1.79599717329648470879e+09,'{"sids":["SMf29eb35588aca9128307b9cb9a7ce3af"]}',NULL);
INSERT INTO "runs" VALUES('fixture-interrupted','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550111","+15005550112","+15005550113","+15005550114"]}','running',12986,'journal-fixture.invalid',1.79599717330039858817e+09,NULL,NULL,NULL);
CREATE TABLE steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    state TEXT NOT NULL,
    outputs TEXT,
    error TEXT,
    PRIMARY KEY (run_id, step_id)
);
INSERT INTO "steps" VALUES('fixture-done','send','succeeded','[{"body":"Notice #0","from":"+15005550006","to":"+15005550110","status":"queued","sid":"SMf29eb35588aca9128307b9cb9a7ce3af","account_sid":"AC74d80968729b882663402c64aa400ae2","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:06:13.000Z","date_sent":null,"date_updated":"2026-11-30T00:06:13.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMf29eb35588aca9128307b9cb9a7ce3af.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC74d80968729b882663402c64aa400ae2/Messages/SMf29eb35588aca9128307b9cb9a7ce3af/Media.json"},"messaging_service_sid":null}]',NULL);
CREATE INDEX runs_started ON runs (started);
COMMIT;
PRAGMA user_version = 0;
