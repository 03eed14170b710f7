package dolphin.hz;

import com.hazelcast.map.EntryProcessor;
import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.nio.serialization.IdentifiedDataSerializable;
import java.io.IOException;
import java.util.Map;

/**
 * An entry processor that replaces the value with {@code value} only when {@link #refuse}
 * finds nothing against it, atomically on the partition that owns the key. The answer is the
 * JSON text of {@link Envelope#result}; the stored value is whatever holds after the call.
 */
abstract class Guarded implements EntryProcessor<String, String, String>, IdentifiedDataSerializable {
    protected String value;

    /** Why {@code next} must not replace {@code current} (null: apply it). */
    abstract String refuse(Envelope next, Envelope current, String currentText);

    @Override
    public String process(Map.Entry<String, String> entry) {
        String currentText = entry.getValue();
        Envelope next = Envelope.parse(value);
        if (next == null) {
            return Envelope.result(false, "malformed: not a store envelope", currentText);
        }
        String why = refuse(next, Envelope.parse(currentText), currentText);
        if (why != null) {
            return Envelope.result(false, why, currentText);
        }
        entry.setValue(value);
        return Envelope.result(true, "", value);
    }

    @Override
    public int getFactoryId() {
        return ProcessorFactory.FACTORY_ID;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
        out.writeString(value);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
        value = in.readString();
    }

    /** The common sequence rule: a readable current value with a sequence at or above next's wins. */
    static String staleSeq(Envelope next, Envelope current) {
        if (current != null && next.seq <= current.seq) {
            return "stale: seq " + next.seq + " <= stored " + current.seq;
        }
        return null;
    }
}
