-- A run journal, written by tests/data/make_journal_fixture.py;
-- see tests/data/README.md for the code that wrote it.
BEGIN TRANSACTION;
CREATE TABLE consent (recipient TEXT NOT NULL, sender TEXT NOT NULL, state TEXT NOT NULL, source TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (recipient, sender)) WITHOUT ROWID;
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
INSERT INTO "deliveries" VALUES('inbound:SM55555555555555555555555555555555','workflows/journal-reply.yaml','20261130-054202-865a520703','pending',1,NULL,NULL);
CREATE TABLE events (
        event_key TEXT PRIMARY KEY,
        token TEXT UNIQUE,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        reply TEXT,
        received REAL NOT NULL
    );
INSERT INTO "events" VALUES('inbound:SM55555555555555555555555555555555',NULL,'twilio/message_received','{"MessageSid":"SM55555555555555555555555555555555","SmsSid":null,"SmsMessageSid":null,"AccountSid":"AC00000000000000000000000000000000","MessagingServiceSid":null,"From":"+15005550120","To":"+15005550006","Body":"hello","NumMedia":0,"NumSegments":1,"media":[],"SmsStatus":null,"ApiVersion":null,"FromCity":null,"FromState":null,"FromZip":null,"FromCountry":null,"ToCity":null,"ToState":null,"ToZip":null,"ToCountry":null,"OptOutType":null}','<?xml version="1.0" encoding="UTF-8"?><Response/>',1.79601732202198982246e+09);
CREATE TABLE item_rows (step_key INTEGER NOT NULL, idx INTEGER NOT NULL, state INTEGER NOT NULL, key TEXT, digest BLOB, sid TEXT, status TEXT, error_code INTEGER, output TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, started REAL, finished REAL, reconciled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (step_key, idx)) WITHOUT ROWID;
INSERT INTO "item_rows" VALUES(1,0,1,'+15005550110',X'87318E2A2923CF85','SM43f5caf7d3ddd0542132b52a95f77c12','queued',NULL,'{"date_created":"2026-11-30T05:42:01.000Z"}',NULL,1,1.7960173219956738949e+09,1.79601732200007677079e+09,0);
INSERT INTO "item_rows" VALUES(2,0,1,'+15005550111',X'719996F52B4E7BCC','SM5f925b18b746eba72985e7368b47a4b5','queued',NULL,'{"date_created":"2026-11-30T05:42:02.000Z"}',NULL,1,1.79601732200308299063e+09,1.79601732200452184678e+09,0);
INSERT INTO "item_rows" VALUES(2,1,1,'+15005550112',X'3F3DA0F4DEEA288C','SM36dcfcc76206b906b93350b6d73e5d65','queued',NULL,'{"date_created":"2026-11-30T05:42:02.000Z"}',NULL,1,1.79601732200457406048e+09,1.79601732200639915468e+09,0);
INSERT INTO "item_rows" VALUES(2,2,0,'+15005550113',X'7793ECEB994674C1',NULL,NULL,NULL,NULL,NULL,1,1.79601732200647544856e+09,NULL,0);
CREATE TABLE pages (step_key INTEGER NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (step_key, idx)) WITHOUT ROWID;
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
INSERT INTO "runs" VALUES('fixture-done','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550110"]}','succeeded',27193,'journal-fixture.invalid',1.7960173219536201954e+09,1.79601732200136566166e+09,'{"sids":["SM43f5caf7d3ddd0542132b52a95f77c12"]}',NULL,NULL);
INSERT INTO "runs" VALUES('fixture-interrupted','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550111","+15005550112","+15005550113","+15005550114"]}','running',27193,'journal-fixture.invalid',1.79601732200205659864e+09,NULL,NULL,NULL,NULL);
CREATE TABLE step_keys (key INTEGER PRIMARY KEY, run_id TEXT NOT NULL, step_id TEXT NOT NULL, UNIQUE (run_id, step_id));
INSERT INTO "step_keys" VALUES(1,'fixture-done','send');
INSERT INTO "step_keys" VALUES(2,'fixture-interrupted','send');
CREATE TABLE steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        state TEXT NOT NULL,
        outputs TEXT,
        error TEXT,
        PRIMARY KEY (run_id, step_id)
    );
INSERT INTO "steps" VALUES('fixture-done','send','succeeded','null',NULL);
CREATE INDEX runs_started ON runs (started);
CREATE INDEX deliveries_pending ON deliveries (state, seq);
CREATE INDEX item_rows_sid ON item_rows (step_key, sid) WHERE sid IS NOT NULL;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('deliveries',1);
COMMIT;
PRAGMA user_version = 4;
