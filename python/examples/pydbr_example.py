#!/usr/bin/env python3
# A PyDBR program written as the Data Broker's Python examples are: create a namespace,
# put/read/get, the asynchronous calls, directory, iterator, delete. It runs against the
# broker gateway named by DBR_SERVER (e.g. sock://127.0.0.1:9999); each check prints its
# outcome and any failed check makes the exit code non-zero.
import sys
import time

from _dbr_interface import ffi
from dbr_module import dbr

failures = 0


def check(what, ok):
    global failures
    if not ok:
        failures += 1
    print(('ok     ' if ok else 'FAILED ') + what)


dbr_name = "DBRexample"
level = dbr.DBR_PERST_VOLATILE_SIMPLE
group_list = ffi.new('DBR_GroupList_t')
dbr_hdl = ffi.new('DBR_Handle_t*')
dbr_hdl = dbr.create(dbr_name, level, group_list)
check('create ' + dbr_name, dbr_hdl != ffi.NULL)
if dbr_hdl == ffi.NULL:
    print('Cannot create the namespace; is DBR_SERVER a running gateway?')
    sys.exit(1)
group = dbr.DBR_GROUP_EMPTY

# query the DBR to see if successful
dbr_state = ffi.new('DBR_State_t*')
res = dbr.query(dbr_hdl, dbr_state, dbr.DBR_STATE_MASK_ALL)
check('query: ' + dbr.getErrorMessage(res), res == dbr.DBR_SUCCESS)

# put / read / get
test_in = "Hello World!"
res = dbr.put(dbr_hdl, test_in, "testTup", group)
res2 = dbr.put(dbr_hdl, "Goodbye!", "testTup", group)
print('Put ' + test_in + ' and Goodbye!')
check('put', res == dbr.DBR_SUCCESS and res2 == dbr.DBR_SUCCESS)
value, res = dbr.read(dbr_hdl, "testTup", "", group, dbr.DBR_FLAGS_NOWAIT)
print('Read returned: ' + str(value) + " - status: " + dbr.getErrorMessage(res))
check('read gives the oldest value', (value, res) == (test_in, dbr.DBR_SUCCESS))
value, res = dbr.get(dbr_hdl, "testTup", "", group, dbr.DBR_FLAGS_NONE)
print('Get returned: ' + str(value) + " - status: " + dbr.getErrorMessage(res))
check('get removes the oldest value', (value, res) == (test_in, dbr.DBR_SUCCESS))
value, res = dbr.get(dbr_hdl, "testTup", "", group, dbr.DBR_FLAGS_NONE)
print('Get returned: ' + str(value) + " - status: " + dbr.getErrorMessage(res))
check('get takes the next value', (value, res) == ("Goodbye!", dbr.DBR_SUCCESS))
value, res = dbr.get(dbr_hdl, "testTup", "", group, dbr.DBR_FLAGS_NOWAIT)
print('Get on an empty name: ' + dbr.getErrorCode(res))
check('get with NOWAIT on a missing name', res == dbr.DBR_ERR_UNAVAIL)

# a binary value with a buffer size
blob = bytes(range(256))
res = dbr.put(dbr_hdl, blob, "blob", group)
size = [1024]
value, res = dbr.get(dbr_hdl, "blob", "", group, dbr.DBR_FLAGS_NONE, size)
check('binary value round-trips (%d bytes stored)' % size[0], value == blob and res == dbr.DBR_SUCCESS)

# asynchronous put and get
tag = dbr.putA(dbr_hdl, test_in, "testTup", group)
print('Async Put tuple: ' + test_in + ", calling Async Get")
tag, value = dbr.getA(dbr_hdl, "testTup", "", group)
state = dbr.DBR_ERR_TAGERROR
if tag != dbr.DB_TAG_ERROR:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = dbr.test(tag)
        if state != dbr.DBR_ERR_INPROGRESS:
            break
        time.sleep(0.01)
print('Async get status: ' + dbr.getErrorMessage(state))
print('Async get tuple return value: ' + str(dbr.decodeTuple(value)))
check('async get', state == dbr.DBR_SUCCESS and dbr.decodeTuple(value) == test_in)

# directory
ret = dbr.put(dbr_hdl, test_in, "HelloTuple", group)
ret = dbr.put(dbr_hdl, "Goodbye World!", "GoodbyeTuple", group)
size = 1024
count = 1000
keys, rsize, res = dbr.directory(dbr_hdl, "*", group, count, size)
print('Keys on DBR: ' + str(sorted(keys[:])))
check('directory', sorted(keys) == ['GoodbyeTuple', 'HelloTuple'] and res == dbr.DBR_SUCCESS)
for key in keys:
    value, ret = dbr.get(dbr_hdl, key, "", group, dbr.DBR_FLAGS_NONE)
    print('Get returned: ' + str(value) + " - status: " + dbr.getErrorMessage(ret))

# iterator
for i in range(10):
    key = "simple_key_" + str(i)
    res = dbr.put(dbr_hdl, "test-value-" + str(i), key, dbr.DBR_GROUP_EMPTY)
seen = 0
iterator = dbr.DBR_ITERATOR_NEW
key, iterator = dbr.iterator(dbr_hdl, iterator, dbr.DBR_GROUP_EMPTY, "")
while iterator != dbr.DBR_ITERATOR_DONE:
    value, res = dbr.get(dbr_hdl, key, "", dbr.DBR_GROUP_EMPTY, dbr.DBR_FLAGS_NONE)
    print('On key ' + key + ' Get returned: ' + str(value))
    seen += 1
    key, iterator = dbr.iterator(dbr_hdl, iterator, dbr.DBR_GROUP_EMPTY, "")
check('iterator visits all 10 keys', seen == 10)

print('Delete Data Broker')
res = dbr.delete(dbr_name)
print('Exit Status: ' + dbr.getErrorMessage(res))
check('delete', res == dbr.DBR_SUCCESS)

print('%d check(s) failed' % failures)
sys.exit(1 if failures else 0)
