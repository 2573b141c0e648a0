package ingest

// EncodeJournalRecord exposes the journal's record format to the external tests.
func EncodeJournalRecord(b []byte, m *Message) []byte { return encodeRecord(b, m) }
