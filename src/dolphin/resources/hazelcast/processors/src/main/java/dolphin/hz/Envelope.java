package dolphin.hz;

import com.hazelcast.internal.json.Json;
import com.hazelcast.internal.json.JsonObject;
import com.hazelcast.internal.json.JsonValue;

/**
 * A store value: the JSON envelope {"schema":1,"ts_ns":...,"seq":...,"data":{...}} that
 * dolphin.store.schema writes. Parsing never throws: a text that is not such an envelope is null.
 */
final class Envelope {
    final long tsNs;
    final long seq;
    final JsonObject data;

    private Envelope(long tsNs, long seq, JsonObject data) {
        this.tsNs = tsNs;
        this.seq = seq;
        this.data = data;
    }

    static Envelope parse(String text) {
        if (text == null) {
            return null;
        }
        try {
            JsonObject env = Json.parse(text).asObject();
            JsonValue schema = env.get("schema");
            JsonValue ts = env.get("ts_ns");
            JsonValue data = env.get("data");
            if (schema == null || !schema.isNumber() || ts == null || !ts.isNumber()
                    || data == null || !data.isObject()) {
                return null;
            }
            JsonValue seq = env.get("seq");
            long seqValue = seq != null && seq.isNumber() ? seq.asLong() : 0L;
            return new Envelope(ts.asLong(), seqValue, data.asObject());
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The finite number under {@code name} in data, or NaN when absent or not a number. */
    double number(String name) {
        JsonValue v = data.get(name);
        if (v == null || !v.isNumber()) {
            return Double.NaN;
        }
        double d = v.asDouble();
        return Double.isFinite(d) ? d : Double.NaN;
    }

    /** The string under {@code name} in data, or null. */
    String string(String name) {
        JsonValue v = data.get(name);
        return v != null && v.isString() ? v.asString() : null;
    }

    boolean has(String name) {
        JsonValue v = data.get(name);
        return v != null && !v.isNull();
    }

    /** The processor's answer: {"applied":..,"reason":..,"value":stored text or null}. */
    static String result(boolean applied, String reason, String stored) {
        JsonObject out = Json.object().add("applied", applied).add("reason", reason);
        out.add("value", stored == null ? Json.NULL : Json.value(stored));
        return out.toString();
    }
}
