package dolphin.hz;

import com.hazelcast.nio.serialization.DataSerializableFactory;
import com.hazelcast.nio.serialization.IdentifiedDataSerializable;

/** The factory of DOLPHIN's entry processors; the member config registers it by its id. */
public final class ProcessorFactory implements DataSerializableFactory {
    public static final int FACTORY_ID = 7301;
    public static final int POSTURE_SET = 1;
    public static final int ACB_APPLY = 2;
    public static final int HEARTBEAT_TOUCH = 3;

    @Override
    public IdentifiedDataSerializable create(int classId) {
        switch (classId) {
            case POSTURE_SET:
                return new PostureSet();
            case ACB_APPLY:
                return new AcbApply();
            case HEARTBEAT_TOUCH:
                return new HeartbeatTouch();
            default:
                return null;
        }
    }
}
