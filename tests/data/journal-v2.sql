-- A run journal, written by tests/data/make_journal_fixture.py;
-- see tests/data/README.md for the code that wrote it.
BEGIN TRANSACTION;
CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
CREATE TABLE deliveries (
        event_key TEXT NOT NULL,
        workflow TEXT NOT NULL,
        run_id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT, claimed REAL,
        UNIQUE (event_key, workflow)
    );
INSERT INTO "deliveries" VALUES('inbound:SM55555555555555555555555555555555','workflows/journal-reply.yaml','20261130-005104-ea5113b32b','pending',1,NULL,NULL);
CREATE TABLE events (
        event_key TEXT PRIMARY KEY,
        token TEXT UNIQUE,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        reply TEXT,
        received REAL NOT NULL
    );
INSERT INTO "events" VALUES('inbound:SM55555555555555555555555555555555',NULL,'twilio/message_received','{"MessageSid":"SM55555555555555555555555555555555","SmsSid":null,"SmsMessageSid":null,"AccountSid":"AC00000000000000000000000000000000","MessagingServiceSid":null,"From":"+15005550120","To":"+15005550006","Body":"hello","NumMedia":0,"NumSegments":1,"media":[],"SmsStatus":null,"ApiVersion":null,"FromCity":null,"FromState":null,"FromZip":null,"FromCountry":null,"ToCity":null,"ToState":null,"ToZip":null,"ToCountry":null,"OptOutType":null}','<?xml version="1.0" encoding="UTF-8"?><Response/>',1.79599986489427948001e+09);
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
INSERT INTO "items" VALUES('fixture-done','send',0,'succeeded','{"from":"+15005550006","to":"+15005550110","body":"Notice #0"}',1,1.79599986483065557482e+09,'{"body":"Notice #0","from":"+15005550006","to":"+15005550110","status":"queued","sid":"SMb595553905c91395b174f1ffde95079b","account_sid":"AC75b736b2e608302a103c52b5ee030bc9","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:51:04.000Z","date_sent":null,"date_updated":"2026-11-30T00:51:04.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SMb595553905c91395b174f1ffde95079b.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SMb595553905c91395b174f1ffde95079b/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',0,'succeeded','{"from":"+15005550006","to":"+15005550111","body":"Notice #0"}',1,1.79599986486064863199e+09,'{"body":"Notice #0","from":"+15005550006","to":"+15005550111","status":"queued","sid":"SMc8ab4df2e0a3e22a613cc0ec46201a57","account_sid":"AC75b736b2e608302a103c52b5ee030bc9","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:51:04.000Z","date_sent":null,"date_updated":"2026-11-30T00:51:04.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SMc8ab4df2e0a3e22a613cc0ec46201a57.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SMc8ab4df2e0a3e22a613cc0ec46201a57/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',1,'succeeded','{"from":"+15005550006","to":"+15005550112","body":"Notice #1"}',1,1.79599986486648440365e+09,'{"body":"Notice #1","from":"+15005550006","to":"+15005550112","status":"queued","sid":"SM7c61aa2cae3dd4105dca1714d51471ac","account_sid":"AC75b736b2e608302a103c52b5ee030bc9","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:51:04.000Z","date_sent":null,"date_updated":"2026-11-30T00:51:04.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SM7c61aa2cae3dd4105dca1714d51471ac.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SM7c61aa2cae3dd4105dca1714d51471ac/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',2,'started','{"from":"+15005550006","to":"+15005550113","body":"Notice #2"}',1,1.79599986487217450148e+09,NULL,NULL,NULL,0);
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
        error TEXT,
        trigger TEXT
    );
INSERT INTO "runs" VALUES('fixture-done','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550110"]}','succeeded',22699,'journal-fixture.invalid',1.79599986472570824621e+09,1.79599986485210847851e+09,'{"sids":["SMb595553905c91395b174f1ffde95079b"]}',NULL,NULL);
INSERT INTO "runs" VALUES('fixture-interrupted','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550111","+15005550112","+15005550113","+15005550114"]}','running',22699,'journal-fixture.invalid',1.79599986485660028452e+09,NULL,NULL,NULL,NULL);
CREATE TABLE steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        state TEXT NOT NULL,
        outputs TEXT,
        error TEXT,
        PRIMARY KEY (run_id, step_id)
    );
INSERT INTO "steps" VALUES('fixture-done','send','succeeded','[{"body":"Notice #0","from":"+15005550006","to":"+15005550110","status":"queued","sid":"SMb595553905c91395b174f1ffde95079b","account_sid":"AC75b736b2e608302a103c52b5ee030bc9","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:51:04.000Z","date_sent":null,"date_updated":"2026-11-30T00:51:04.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SMb595553905c91395b174f1ffde95079b.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC75b736b2e608302a103c52b5ee030bc9/Messages/SMb595553905c91395b174f1ffde95079b/Media.json"},"messaging_service_sid":null}]',NULL);
CREATE INDEX runs_started ON runs (started);
CREATE INDEX deliveries_pending ON deliveries (state, seq);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('deliveries',1);
COMMIT;
PRAGMA user_version = 2;
