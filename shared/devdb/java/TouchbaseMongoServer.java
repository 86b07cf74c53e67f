// Runs mongo-java-server on loopback for touchbase's development and tests.
//
// Usage: java -cp <jars>:<classes> TouchbaseMongoServer --port N [--h2 FILE]
// Without --h2 the state lives in memory (tests); with it, in an H2 MVStore file (`make run`).
// The backend reports MongoDB 5.0 with wire version 13: PyMongo 4.20 refuses servers below
// wire version 9, and mongo-java-server 1.47 reports 8 by default.

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;
import java.util.List;
import org.h2.mvstore.MVStore;

public final class TouchbaseMongoServer {
    private TouchbaseMongoServer() {}

    /** The server version the backend reports to drivers. */
    private static final class Version implements MongoVersion {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(5, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 13;
        }
    }

    // mongo-java-server 1.47 adds an index to a collection's index list without the collection's
    // lock, while inserts iterate that list under it: an index created while another client
    // inserts into the same collection fails the insert (ConcurrentModificationException) or
    // builds an index that misses the document. The services create their indexes in the
    // background as they start, so the databases below take the collection's lock first.

    /** A memory database that adds indexes under the collection's lock. */
    private static final class LockedMemoryDatabase extends MemoryDatabase {
        LockedMemoryDatabase(String name, CursorRegistry cursors) {
            super(name, cursors);
        }

        @Override
        protected void addIndex(Document description) {
            String ns = description.get("ns").toString();
            Object target = resolveOrCreateCollection(ns.substring(ns.indexOf('.') + 1));
            synchronized (target) {
                super.addIndex(description);
            }
        }
    }

    /** The memory backend, with {@link LockedMemoryDatabase}. */
    private static final class LockedMemoryBackend extends MemoryBackend {
        @Override
        public MemoryDatabase openOrCreateDatabase(String name) {
            return new LockedMemoryDatabase(name, getCursorRegistry());
        }
    }

    /** An H2 database that adds indexes under the collection's lock. */
    private static final class LockedH2Database extends H2Database {
        LockedH2Database(String name, MVStore store, CursorRegistry cursors) {
            super(name, store, cursors);
        }

        @Override
        protected void addIndex(Document description) {
            String ns = description.get("ns").toString();
            Object target = resolveOrCreateCollection(ns.substring(ns.indexOf('.') + 1));
            synchronized (target) {
                super.addIndex(description);
            }
        }
    }

    /** The H2 backend, with {@link LockedH2Database}. */
    private static final class LockedH2Backend extends H2Backend {
        LockedH2Backend(String file) {
            super(file);
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String name) {
            return new LockedH2Database(name, getMvStore(), getCursorRegistry());
        }
    }

    public static void main(String[] args) throws InterruptedException {
        String host = "127.0.0.1";
        int port = 27017;
        String h2File = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--bind" -> host = args[++i];
                case "--h2" -> h2File = args[++i];
                default -> {
                    System.err.println("unknown argument: " + args[i]);
                    System.exit(2);
                }
            }
        }
        MongoBackend backend = h2File == null ? new LockedMemoryBackend() : new LockedH2Backend(h2File);
        backend.version(new Version());
        MongoServer server = new MongoServer(backend);
        // SIGTERM (and the parent's death signal) run this hook: the H2 store is flushed and
        // closed, so acknowledged writes survive a normal stop. A SIGKILL still loses the last
        // second or so of writes, which is acceptable for a development database only.
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdown, "shutdown"));
        server.bind(host, port);
        System.out.println("mongo-java-server listening on " + host + ":" + port
                + (h2File == null ? " (memory)" : " (h2: " + h2File + ")"));
        System.out.flush();
        Thread.currentThread().join();
    }
}
