package dolphin.hz;

/**
 * Records a component's heartbeat only if it is newer (a larger ts_ns) than the stored one, so
 * a delayed or replayed beat never makes a component look older than it is.
 */
public final class HeartbeatTouch extends Guarded {
    @Override
    String refuse(Envelope next, Envelope current, String currentText) {
        String component = next.string("component");
        if (component == null || component.isEmpty()) {
            return "invalid: no component";
        }
        if (current != null && next.tsNs <= current.tsNs) {
            return "stale: ts_ns " + next.tsNs + " <= stored " + current.tsNs;
        }
        return null;
    }

    @Override
    public int getClassId() {
        return ProcessorFactory.HEARTBEAT_TOUCH;
    }
}
