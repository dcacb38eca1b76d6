pub(super) fn register<M: mlua::UserDataMethods<super::runtime::NodeRef>>(_methods: &mut M) {}
