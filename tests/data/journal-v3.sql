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
INSERT INTO "deliveries" VALUES('inbound:SM55555555555555555555555555555555','workflows/journal-reply.yaml','20261130-010245-c3485bb137','pending',1,NULL,NULL);
CREATE TABLE events (
        event_key TEXT PRIMARY KEY,
        token TEXT UNIQUE,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        reply TEXT,
        received REAL NOT NULL
    );
INSERT INTO "events" VALUES('inbound:SM55555555555555555555555555555555',NULL,'twilio/message_received','{"MessageSid":"SM55555555555555555555555555555555","SmsSid":null,"SmsMessageSid":null,"AccountSid":"AC00000000000000000000000000000000","MessagingServiceSid":null,"From":"+15005550120","To":"+15005550006","Body":"hello","NumMedia":0,"NumSegments":1,"media":[],"SmsStatus":null,"ApiVersion":null,"FromCity":null,"FromState":null,"FromZip":null,"FromCountry":null,"ToCity":null,"ToState":null,"ToZip":null,"ToCountry":null,"OptOutType":null}','<?xml version="1.0" encoding="UTF-8"?><Response/>',1.79600056570192527774e+09);
CREATE TABLE item_rows (step_key INTEGER NOT NULL, idx INTEGER NOT NULL, state INTEGER NOT NULL, key TEXT, digest BLOB, sid TEXT, status TEXT, error_code INTEGER, output TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, started REAL, finished REAL, reconciled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (step_key, idx)) WITHOUT ROWID;
INSERT INTO "item_rows" VALUES(1,0,1,'+15005550110',X'87318E2A2923CF85','SM9ba2d7dee5de812c4f521047ee1ca2f9','queued',NULL,NULL,NULL,1,1.79600056562863183017e+09,1.79600056564737939833e+09,0);
INSERT INTO "item_rows" VALUES(2,0,1,'+15005550111',X'719996F52B4E7BCC','SM1e8e35ca590e936675d127deb66ec0ee','queued',NULL,NULL,NULL,1,1.79600056567115521429e+09,1.79600056567755341527e+09,0);
INSERT INTO "item_rows" VALUES(2,1,1,'+15005550112',X'3F3DA0F4DEEA288C','SMe0c5d2adc0c2a6d2ee0082490b6387bb','queued',NULL,NULL,NULL,1,1.7960005656776227951e+09,1.79600056568099594117e+09,0);
INSERT INTO "item_rows" VALUES(2,2,0,'+15005550113',X'7793ECEB994674C1',NULL,NULL,NULL,NULL,NULL,1,1.79600056568104100222e+09,NULL,0);
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
INSERT INTO "runs" VALUES('fixture-done','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550110"]}','succeeded',4811,'journal-fixture.invalid',1.79600056553361320495e+09,1.79600056565634536749e+09,'{"sids":["SM9ba2d7dee5de812c4f521047ee1ca2f9"]}',NULL,NULL);
INSERT INTO "runs" VALUES('fixture-interrupted','workflows/journal-fanout.yaml','journal-fanout','58cdeb775cdf418ec308620678b9d2d6afde2814bf1db527fb22a575accb3843','{"recipients":["+15005550111","+15005550112","+15005550113","+15005550114"]}','running',4811,'journal-fixture.invalid',1.79600056566049623481e+09,NULL,NULL,NULL,NULL);
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
PRAGMA user_version = 3;
