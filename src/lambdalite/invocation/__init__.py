"""The invocation path below the control plane: execution environments, their Runtime API,
warm pools (``manager.EnvironmentManager``) and the contract types in ``model``."""
