// Package badgerstore is the embedded, persistent store.Store, built on
// badger v4. It is the only package in the module that imports badger.
//
// # Key layout
//
// Every key starts with a one-byte table tag. CIDs are stored in their
// binary form. Inside the keys of its feed log and derived state, written
// several times for every record, a commons is named by a short ID (the
// 'i' table, given at its first write and kept) as a uvarint, one byte for
// the first 127 commons rather than 37 for a length and the CID: no uvarint
// is the start of another, so one commons' keys never share a prefix with
// another's, and no commons has ID 0, under which one without an ID reads
// nothing. Integers are 8-byte big-endian, so byte order is numeric order.
//
//	'v'                          → format version ("commons-store/2")
//	'r' record CID               → record bytes
//	'b' blob CID                 → blob bytes
//	'i' commons                  → ID              (a commons' short ID)
//	'F' ID cursor                → record CID      (feed log, one per record)
//	'h' commons                  → cursor          (feed head of a commons)
//	'c' commons                  → sequence number (joined commons)
//	'm' key                      → value           (PutMeta: the caller's metadata)
//	'D' ID key                   → value           (a commons' derived state)
//	'a' commons                  → cursor          (the cursor its derived state reflects)
//	'j' index                    → write           (a CommitDerived too large for one transaction)
//	'J'                          → ""              (that journal is complete)
//	'o'                          → ""              (journal entries may exist)
//
// Format 1 ("commons-store/1") named the commons by its CID in the feed
// log ('f' len commons cursor) and the derived state ('d' len commons
// key); Open moves such a store to format 2 once, logging its progress
// (migrate.go: about a minute for each 1,000,000 records on 2 cores), and
// refuses a format it does not know. Badger's tables store a key as what
// differs from the first of its block, so the tables hardly shrank; but a
// memtable holds keys whole, and comparisons walked the 37 bytes: imports
// of 1,000,000 records on 2 cores, two of each alternately, took 146 and
// 139 s with the short IDs against 164 and 178 s with the CIDs.
//
// The feed log maps cursors to CIDs and Feed looks the bytes up under 'r':
// records are written once, not twice. Measured with 512-byte records on a
// 2-core machine, storing the bytes inline in the feed entry as well made
// Feed about 2.5x faster (0.6-0.9 µs instead of 1.9 µs per record) but
// PutRecords about 1.5x slower at batch 1024 (17-24 µs instead of 13 µs per
// record) and doubled the space; ingest is the hot path, so the lookup wins.
// Commons lists the 'c' table sorted by sequence number, which is the order
// of AddCommons calls.
//
// # Durability
//
// The database runs with SyncWrites: a transaction's commit returns after
// its write-ahead log (and value log, for values of ValueThreshold bytes
// or more) is synced. Each PutRecords call writes all its new records,
// their feed entries and the updated heads in one transaction, so it costs
// one sync and is all-or-nothing (a call that also writes a damaged
// record's bytes again, from a whole copy, writes them in one more). This was measured against SyncWrites
// off plus an explicit DB.Sync after the commit: the speed is the same
// within noise (both pay the one fsync, about 0.2 ms on the test machine),
// and DB.Sync only syncs the active memtable's log, so a memtable rotated
// in the middle of a call could lose its unsynced part on power loss.
//
// A call too large for one badger transaction (about 15% of the memtable
// size, 2.4 MiB here, or several thousand records) is split, in entry
// order, into consecutive transactions, each committed and synced in turn
// and each carrying the heads of the commons it touched. The guarantees:
//
//   - When PutRecords returns nil, every entry is durable, including after
//     kill -9 or power loss (disks that lie about flushes aside).
//   - A feed never has a gap or a repeated cursor, and a commons' head always
//     equals its highest stored cursor: a record, its feed entry and its
//     head update are always in the same transaction, and transactions
//     are applied in order on recovery.
//   - A call that fails or is interrupted by a crash has stored a prefix of
//     its new entries (possibly empty; exactly none if it fitted in one
//     transaction), each with the cursor the complete call would have given
//     it. Calling again with the same entries is safe: the stored ones give
//     cursor 0 and the rest get the next cursors.
//   - Cursors are never reused: heads only grow.
//
// PutBlob, AddCommons and PutMeta commit one synced transaction each.
//
// CommitDerived is all or nothing. A call that fits one transaction is
// one; a larger one (a manifest update can restate many records at once)
// is first written whole to the journal ('j', several transactions), then
// marked complete ('J', one), then applied to its keys, then the journal is
// dropped, mark first. An open mark ('o') is written before the journal's
// first entry and deleted after its last, so that Open reads two keys, not
// the journal's range, when no journal was left. Open applies a complete journal left by a crash,
// which is safe to apply twice, and drops an incomplete one, so the
// derived state is always that of a whole number of calls.
//
// # Resources
//
// Options are sized for a desktop daemon: 8 MiB memtables (at most 3)
// and 256 MiB value log files, so the resident size
// stays in the tens of MiB rather than badger's default of several
// hundred. A memtable is flushed to a level 0 table built in memory, in
// buffers that double as they fill, live beside the compactions' own; a
// profile of an import with 16 MiB memtables spent more than a quarter of
// its CPU in the garbage collector, held to the soft memory limit. Against
// 16 MiB memtables, importing 1,000,000 records (2 cores, two runs each)
// took 144 and 160 s instead of 192 and 201 s, with a peak of 249 MB of
// anonymous memory instead of 217; 4 MiB ones were slower again (300,000
// records in 65 s instead of 37). A memtable's log that a crash left from
// larger memtables (a store last run by a version with 16 MiB ones) does
// not fit one of 8 MiB, and badger would exit the process replaying it:
// Open then opens the store with memtables of that log's size, and again.
//
// Tables are 4 MiB at every level and blocks are not compressed: a
// compaction builds its tables in memory, several at once, each in an
// allocation twice the table's size (and badger keeps eight of those for
// the next), and with snappy each block was held twice (raw and
// compressed). Without compression an import's live heap is about half,
// so a soft memory limit (the command sets one) costs it little time; the
// price is disk, about 1.45 times as much. Tables written compressed by
// an earlier version stay readable (each table records its compression)
// until compactions rewrite them. Against 1 MiB tables, importing
// 1,000,000 records (two runs each, alternately, 2 cores) took the same
// time (154 and 156 s), with a peak of 211 and 214 MB of anonymous memory
// instead of 248 and 251, and the daemon started with 100 MB resident
// instead of 113: each table costs Open a file, a mapping and its index,
// and a compaction its bookkeeping. Badger's default doubles the tables'
// size at each level below the first, so that the builders' heap grew as
// the store deepened: 264 MB of it at 3,000,000 records, against 88 MB at
// 1,000,000, above the heap's soft limit. With one size at every level,
// importing 3,000,000 records (one run each, one after the other, 2
// cores) took 635 s against 869 s, with 194 MB of live heap at its
// largest (136 MB of it the builders') against 323 MB (264), and a peak
// of 556 MB resident against 630; the price is more files, 666 tables
// against 212: the repos of an earlier such pair (651 tables and 226),
// opened by one build, started in 1.01 s against 0.83 s the first time
// after the import, and in 0.40 s against 0.33 s the next. Badger holds
// each table's file open: at 666 tables for 3,000,000 records, a store of
// 10,000,000 holds about 2,200 files open. The Go runtime raises the
// process's soft limit on open files to its hard limit, often 524,288 but
// on some systems 4,096, which such a store reaches at about 18,000,000
// records (raise it: LimitNOFILE= in a systemd unit, nofile in
// /etc/security/limits.conf). Level 0 holds up to 8 tables before they are compacted
// into a first level of 64 MiB (badger's defaults: 5 tables, 10 MiB): compactions are
// fewer and write less in all, which is most of what an import of a large
// commons costs; a read checks a few more tables, each behind its bloom
// filter. Each level below the first is four times the size of the one
// above (badger's default: ten): a table compacted into the next level is
// merged with about as many times its bytes there as that ratio, so each
// level writes a key about five times rather than eleven, for a level
// more (at 10,000,000 records, about 6.4 GB of tables: four levels below
// level 0 rather than three, a bloom filter more for a read to check).
// Imports with 4 against 10, one after the other, 2 cores: 1,000,000
// records in 121 and 125 s against 135 and 139 s, 5.5 GB written against
// 6.6 and 6.9, peak 381 and 385 MB resident against 497 and 574;
// 3,000,000 in 520 s against 573, 25.5 GB written against 30.4, peak 534
// MB against 643. Ratios of 3 and 5 took about as long as 4 at 1,000,000.
// The tables' bloom filters hold 10 bits a key rather than 7: badger
// sizes a filter at as many bits a key as the probes its false positive
// rate would take, so its default rate, 0.01, lets 4 to 6% of the keys a
// table lacks through, and 0.001 1 to 1.5% (bloomFalsePositive). Each
// record an import or a join adds is looked for twice before it is stored
// (by the node's state and by the store), and each such lookup checks
// every table of level 0 and one at each level below, seeking in those
// whose filter it passes: a seek reads a block, and such lookups took a
// tenth of an import's CPU. Joining the 1,000,000 records of the kept repo
// (two runs each, alternately, 2 cores) took 120.6 and 124.4 s against
// 130.0 and 131.1 s; importing them, 109.8 and 107.0 s against 106.5 and
// 114.5 s. The filters are 10/7 the size: the 2,118 tables of an import
// of 10,000,000 records held 89.7 million keys, and filters of 74 MB
// (indexes of 106 MB in all) that now come to about 107 MB, pages that
// reads keep mapped (below), and which Open reads through, as it checks
// each index against its checksum. A store keeps the filters its tables
// were written with until compactions write them again.
// Blocks are 16 KiB (badger's default: 4 KiB): a table's index
// holds each block's first key (derived keys are long, 50 to 90 bytes)
// and the table's bloom filter, and Open reads the index of every table
// (whose pages ReleasePages then takes out of the process, below).
// Measured on 300,000 records, the indexes
// came to 4.2 MB instead of 10.5 MB (14 bytes a record instead of 35,
// 140 MB instead of 350 MB at 10 million records); blocks are read
// from the mapped files uncompressed, so a larger one costs a lookup only
// a few more steps of binary search inside it. Before badger opens the
// tables, Open asks the kernel to read the end of each (its last block,
// index and footer, what badger reads), so that badger's faults on them
// find the pages cached rather than each reading around it as far as the
// device reads ahead (readTableEnds): opening the 2,213 tables of
// 10,000,000 records with nothing cached read 571 MB from the disk in
// 0.33 s, against 6.7 GB in 3.7 s, on a machine that reads 8 MiB ahead.
// The same read-around costs a lookup once the page cache no longer holds
// the store: a fault on a page of a table or a value log file reads as
// far around it as the device reads ahead. ReadRandomly has the kernel
// read the faulting page alone; a daemon asks for it while it stores and
// reads records slowly, and takes it back while it imports, syncs or
// exports, whose reads run in order (its doc gives the figures).
// Badger's own log goes to the slog logger given to Open: errors at Warn,
// everything else at Debug.
//
// Badger reads and writes its value log and its tables through shared
// memory mappings, and every page of them the process touches stays in
// its resident memory until the kernel is short of memory: an import of
// 1,000,000 records held 1.36 GB of them at its peak, about what it
// wrote, and a daemon answering queries as much as they read. On Linux,
// ReleasePages (the node calls it twenty times a second while they grow,
// once a second when they do not, with a budget of 16 MiB) takes them out
// of the process once its file pages have grown by the budget since it
// last did: all of the value log files' pages, all of the pages of the
// tables badger lists but their indexes and bloom filters (once they have
// grown by tableBudget, below), and those of
// the tables a compaction is writing up to their indexes (badger lists
// them only once it has written all of them, which can be hundreds of
// megabytes) as soon as their footers are written. The indexes, which
// every read of a key reads at each level, go too, but for the head of
// each (which badger's list of its tables reads), once what a release
// leaves has grown by indexBudget (64 MiB) since they last went: dropped
// at every release, they were mapped again by the next reads. Measured
// on 3,000,000 records (2 cores, `commons daemon`, 500 feed pages of 100
// at random cursors, two runs each, alternately, with an import running
// beside them), that and leaving the value log files in the page cache
// (below) took the daemon's page faults from 162,199 and 155,624 to
// 111,913 and 113,942, its system time from 8.0 and 6.5 s to 3.9 and 4.9
// s, and the pages from 17.6 and 15.3 s to 11.0 and 13.6 s; importing 1,000,000 records took about as long (121 and 107
// s against 114 and 110 s), with peaks of 396 and 355 MB against 403 and
// 442 MB (the kept indexes may add up to indexBudget to a peak, and runs
// here differ by more; the kept tables' data, since, up to tableBudget). It finds the mappings in /proc/self/maps.
//
// From the tables badger lists, it drops the pages (madvise MADV_DONTNEED:
// the mapping stays), with every one of them pinned meanwhile by an
// iterator (which holds a reference to each table listed when it is made;
// badger unmaps a table only once none is left, or as the database
// closes, which the store keeps out meanwhile): their pages stay in the
// page cache, which the kernel keeps or
// reclaims as it does any file's, and a read of them again maps them
// without reading the disk. The same for the value log files two IDs or
// more below the newest in the directory, which badger has cut to their
// size, and neither maps again nor unmaps while the store is open (it
// unmaps them only to delete them, in its garbage collection or DropAll,
// which the store never calls, or as it closes). Everything else (the two
// newest value log files, the one badger writes, which it maps again as
// it finishes it, and the tables not listed yet but for the newest, up to
// unlistedBudget of their data, which stay mapped until listed), it
// asks the kernel to reclaim (MADV_PAGEOUT): a range mapped anew between
// the read of the maps and the call is then only paged out, as the
// kernel's own reclaim would, never lost, where MADV_DONTNEED would
// discard private memory mapped there since. Clean pages paged out leave
// the page cache too, dirty ones stay there until written: a clean page
// read again is read from the file. Paging the tables out as well, as
// this package did before, had an import read again from the disk,
// around each page it faulted in (the kernel reads around a fault, here
// up to 8 MiB), what a compaction or a lookup read: importing 1,000,000
// records (2 cores, runs one after the other) read 13.9 to 14.6 GB from
// the disk and took 176, 152 and 162 s, with peaks of 453, 454 and 482 MB
// resident; dropping the tables' pages instead, with a budget of 48 MiB, 3.3 and 3.5 GB,
// 146 and 145 s, 521 and 527 MB; with 16 MiB, 4.0 GB, 134 and 143 s, 464
// and 501 MB. Measured with and without releasing pages at all, one
// after the other, on 1,000,000 records (2
// cores, `commons testnet bench scale --no-join`): an import's peak of
// 447 MB resident instead of 1,585 (251 and 252 MB of it anonymous), in
// 1.02 times the time; a daemon's 178 MB after 600 queries instead of 968;
// and the p99 of a contribution's lookup 9.7 ms instead of 2.9 ms, right
// after the import, whose pages the cache held without it. On 300,000
// records, two imports each, alternately: peaks of 376 and 393 MB instead
// of 713 and 720, in 1.07 and 1.06 times the time. Leaving the newest of
// the tables not listed yet mapped, up to unlistedBudget (64 MiB) of them,
// rather than paging them out, an import of 1,000,000 records read 1.8 GB
// from the disk rather than 4.3, and a daemon started on the store read
// nothing from it for a feed page, against 1.3 to 1.8 page faults that
// read it a page, for peaks 25 to 57 MB higher (unlistedBudget).
//
// The listed tables' pages (not their indexes) go only once what a
// release leaves has grown by tableBudget (64 MiB) since they last went;
// until then a release takes the value log files' pages and those of the
// tables not listed yet. Most of what grows between two releases is value
// log pages, read or written once, where a table's block is read again by
// every lookup that lands in it: dropped at every release, the blocks were
// faulted in again and again. Serving a join of 1,000,000 records, a
// daemon spent about half of its time faulting them in and releasing
// them; with the budget (2 cores, `commons testnet bench scale --imported`
// on the same repo, one run after the other) the join took 135.1 s
// against 158.0 s, the joining daemon's peak was 439 MB against 367 MB,
// and the serving daemon's 219 MB against 278 MB; an import of those
// records (`commons import`) took 119.6 s against 137.4 s, with a peak of
// 433 MB against 364 MB.
//
// # Values
//
// Values of 320 bytes or more (valueThreshold) go to badger's value log,
// a pointer to them into the tables: records (a real one is 360 bytes or
// more) and blobs, written once and never changed. The derived state's
// values, rewritten as records arrive, are nearly all smaller and stay in
// the tables. Compactions then move pointers, not records: importing
// 1,000,000 records took 140 s instead of 209 s (the two builds one after
// the other on a 2-core machine), and queries right after it were faster
// (contribution p99 9 ms instead of 138 ms), the tables being a fraction
// of the size.
//
// Badger's Open reads the newest value log file through, and cuts it at
// the end of the last whole transaction before the first entry that fails
// its checksum. After a crash that is a torn write, and right. After one
// damaged byte it would be every record written to the file after it: in
// an earlier test, 841 and 1,983 records of 2,000. Each Open starts a new
// value log file, so the newest holds what was written since the last
// start. It reads that file through its mapping, whose pages then stay in
// the process for as long as the file is open: after an import, up to
// valueLogFileSize of them. So when that file is larger than reopenAbove,
// Open opens the store a second time, on the new, empty file (100,000
// records imported: 51 MB resident after the daemon's start instead of 98
// MB; `commons testnet bench scale --records 100000 --no-join`). Close
// does the same after it, when this Open wrote more than reopenAbove into
// the value log (an import, a join): the process that wrote the file
// reads it through again, once more than it would have, and the next
// start finds a small newest file and opens the store once, reading
// every table's index once rather than twice. Importing 1,000,000
// records, one run each, one after the other (2 cores, `commons import
// g1m.car --join`): 162.4 s against 162.0 s; the first daemon start
// after it 0.17 s against 0.43 s, the next 0.17 s and 0.19 s. Close leaves a mark naming that file and its size, which the
// next Open takes away: when the mark still names the file as it is (and
// no write-ahead log is left), nothing can be torn, and Open reads the file
// first as badger will (checkLogs) and refuses it, naming it, if badger
// would not read it through. Rebuild then mends a damaged record's entry
// there, giving it its checksum again (the file as it was is kept as
// NAME.damaged), so that the damage shows where it lies, as a record whose
// bytes do not match its CID, for RepairRecord (or PutRecords, given the
// record by a peer) to write again, and likewise a blob's (PutBlob); it
// mends nothing else. After a crash, Open
// cannot tell a torn write from damage, and leaves the newest value log
// file to badger, as it leaves the write-ahead logs, where the records of
// the last moments lay before and still do. A damaged byte in an older
// value log file, as in a table, damages one record, which Verify and
// every read name.
//
// Values written over (a derived entry of 320 bytes or more, rare) or
// deleted (a commons' records purged, a blob deleted) leave their space in
// the value log: badger's value log garbage collection is not run, since
// it reads a file with the same cut at the first damaged entry and then
// deletes the whole file, values still in use included, which later read
// as empty. Compact gives that space back instead, by writing the store
// again beside the old one and then putting the copy in its place.
//
// Derived keys carry the commons' whole CID (39 bytes with its tag and
// length). A 4-byte prefix instead was measured on an import of 300,000
// records: 47.0 and 45.2 s against 47.0 and 45.3 s with the whole CID, the
// two builds one after the other. In a CPU profile of that import, badger
// spends its time building tables (copying into them and msync: a quarter
// of the CPU), not on key bytes, so the prefix stays as it is.
//
// An import into a deep store is bound by its compactions, and they by how
// badger writes a table: through a shared mapping of the new file, which
// it then syncs (msync). Importing 1,000,000 records into a copy of a
// store of 10,000,000 (2 cores) took 251 to 267 s, against 107 to 118 s
// into an empty one (with the bloom filters' build, above). A CPU profile of a minute of it put 31% of the CPU in
// building tables, half of that in the msync: to write a mapped page back
// the kernel write-protects it in the process's page tables and flushes
// both cores' translation caches, one page at a time. Badger has no
// option to write its tables otherwise. The store holds about nine keys
// a record (89.7 million at 10,000,000 records), most of them the derived
// state's, and compactions write each of them again at every level.
//
// Open refuses a directory that another process has open (ErrLocked), and
// returns badger's error, wrapped, for a damaged or unreadable one. Beyond
// badger's own crash recovery (which drops a torn, never-acknowledged tail
// of its logs), it never deletes or rewrites files to make a damaged
// directory open; only Rebuild mends a log file, keeping it as it was.
package badgerstore
