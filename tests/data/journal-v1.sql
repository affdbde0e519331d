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
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        UNIQUE (event_key, workflow)
    );
INSERT INTO "deliveries" VALUES('inbound:SM55555555555555555555555555555555','workflows/journal-reply.yaml','20261130-002856-6e7c2b48f8','pending',1);
CREATE TABLE events (
        event_key TEXT PRIMARY KEY,
        token TEXT UNIQUE,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        reply TEXT,
        received REAL NOT NULL
    );
INSERT INTO "events" VALUES('inbound:SM55555555555555555555555555555555',NULL,'twilio/message_received','{"MessageSid":"SM55555555555555555555555555555555","SmsSid":null,"SmsMessageSid":null,"AccountSid":"AC00000000000000000000000000000000","MessagingServiceSid":null,"From":"+15005550120","To":"+15005550006","Body":"hello","NumMedia":0,"NumSegments":1,"media":[],"SmsStatus":null,"ApiVersion":null,"FromCity":null,"FromState":null,"FromZip":null,"FromCountry":null,"ToCity":null,"ToState":null,"ToZip":null,"ToCountry":null,"OptOutType":null}','<?xml version="1.0" encoding="UTF-8"?><Response/>',1.79599853636712765694e+09);
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
INSERT INTO "items" VALUES('fixture-done','send',0,'succeeded','{"from":"+15005550006","to":"+15005550110","body":"Notice #0"}',1,1.79599853634964203834e+09,'{"body":"Notice #0","from":"+15005550006","to":"+15005550110","status":"queued","sid":"SMef1ae93e3c31494b59a2c311687d3568","account_sid":"AC3522233bdb899ab389c92e8dedff426a","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:28:56.000Z","date_sent":null,"date_updated":"2026-11-30T00:28:56.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SMef1ae93e3c31494b59a2c311687d3568.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SMef1ae93e3c31494b59a2c311687d3568/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',0,'succeeded','{"from":"+15005550006","to":"+15005550111","body":"Notice #0"}',1,1.79599853635506749149e+09,'{"body":"Notice #0","from":"+15005550006","to":"+15005550111","status":"queued","sid":"SM301642849a5f315120d79dfd2e70c1d3","account_sid":"AC3522233bdb899ab389c92e8dedff426a","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:28:56.000Z","date_sent":null,"date_updated":"2026-11-30T00:28:56.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SM301642849a5f315120d79dfd2e70c1d3.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SM301642849a5f315120d79dfd2e70c1d3/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',1,'succeeded','{"from":"+15005550006","to":"+15005550112","body":"Notice #1"}',1,1.79599853635671925537e+09,'{"body":"Notice #1","from":"+15005550006","to":"+15005550112","status":"queued","sid":"SMa1eafb719524f7ec6bbbe6f5696889d8","account_sid":"AC3522233bdb899ab389c92e8dedff426a","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:28:56.000Z","date_sent":null,"date_updated":"2026-11-30T00:28:56.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SMa1eafb719524f7ec6bbbe6f5696889d8.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SMa1eafb719524f7ec6bbbe6f5696889d8/Media.json"},"messaging_service_sid":null}',NULL,NULL,0);
INSERT INTO "items" VALUES('fixture-interrupted','send',2,'started','{"from":"+15005550006","to":"+15005550113","body":"Notice #2"}',1,1.79599853635804510118e+09,NULL,NULL,NULL,0);
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
INSERT INTO "runs" VALUES('fixture-done','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550110"]}','succeeded',9538,'journal-fixture.invalid',1.79599853630664277074e+09,1.79599853635386824601e+09,'{"sids":["SMef1ae93e3c31494b59a2c311687d3568"]}',NULL,NULL);
INSERT INTO "runs" VALUES('fixture-interrupted','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550111","+15005550112","+15005550113","+15005550114"]}','running',9538,'journal-fixture.invalid',1795998536.35443,NULL,NULL,NULL,NULL);
CREATE TABLE steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        state TEXT NOT NULL,
        outputs TEXT,
        error TEXT,
        PRIMARY KEY (run_id, step_id)
    );
INSERT INTO "steps" VALUES('fixture-done','send','succeeded','[{"body":"Notice #0","from":"+15005550006","to":"+15005550110","status":"queued","sid":"SMef1ae93e3c31494b59a2c311687d3568","account_sid":"AC3522233bdb899ab389c92e8dedff426a","api_version":"2010-04-01","num_segments":1,"num_media":0,"date_created":"2026-11-30T00:28:56.000Z","date_sent":null,"date_updated":"2026-11-30T00:28:56.000Z","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"uri":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SMef1ae93e3c31494b59a2c311687d3568.json","subresource_uris":{"media":"/2010-04-01/Accounts/AC3522233bdb899ab389c92e8dedff426a/Messages/SMef1ae93e3c31494b59a2c311687d3568/Media.json"},"messaging_service_sid":null}]',NULL);
CREATE INDEX runs_started ON runs (started);
CREATE INDEX deliveries_pending ON deliveries (state, seq);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('deliveries',1);
COMMIT;
PRAGMA user_version = 1;
